// NestJS on its Express adapter: an async factory creates the Nest application around an Express
// instance, initialises it (app.init(), never app.listen()) and returns the Express instance,
// which is a Node request listener. Each worker builds its own Nest application.
// Serve it with `npx tsgunicorn 'examples/nestjs.mjs:createApp()'`.
//
// This file is plain JavaScript, so the decorators are called as functions (what TypeScript
// compiles `@Controller()` and friends to). A NestJS app written in TypeScript works the same way
// once compiled by `nest build` or `tsc` (emitDecoratorMetadata needs a real TypeScript build;
// loaders like tsx do not emit decorator metadata): point tsgunicorn at the compiled main module's
// factory, e.g. `tsgunicorn 'dist/main.js:createApp()'`.
import 'reflect-metadata';
import { Controller, Get, Header, Inject, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import express from 'express';

/** Applies method decorators the way TypeScript does: (prototype, name, descriptor). */
function decorateMethod(cls, name, ...decorators) {
  let descriptor = Object.getOwnPropertyDescriptor(cls.prototype, name);
  for (const d of decorators.reverse()) descriptor = d(cls.prototype, name, descriptor) ?? descriptor;
  Object.defineProperty(cls.prototype, name, descriptor);
}

class GreetingService {
  greet() {
    return 'Hello from NestJS\n';
  }
}
Injectable()(GreetingService);

class AppController {
  constructor(greetings) {
    this.greetings = greetings;
  }

  hello() {
    return this.greetings.greet();
  }

  info() {
    return { framework: 'nestjs', worker: process.pid };
  }
}
// @Controller() class AppController { constructor(@Inject(GreetingService) greetings) ... },
// @Get() @Header('Content-Type', ...) hello() ..., @Get('json') info() ...
Inject(GreetingService)(AppController, undefined, 0);
Controller()(AppController);
decorateMethod(AppController, 'hello', Get(), Header('Content-Type', 'text/plain; charset=utf-8'));
decorateMethod(AppController, 'info', Get('json'));

class AppModule {}
Module({ controllers: [AppController], providers: [GreetingService] })(AppModule);

export async function createApp() {
  const server = express();
  const app = await NestFactory.create(AppModule, new ExpressAdapter(server), {
    // Nest logs every route it maps at start, in every worker: keep warnings and errors only.
    logger: ['error', 'warn'],
  });
  await app.init();
  return server;
}
