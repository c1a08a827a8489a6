#!/usr/bin/env node
// The installed command. The master's signal handlers go in first, before the rest of the program
// is even loaded (a static import would load it all before this line runs); the compiled CLI does
// the rest.
import { SignalQueue } from '../dist/src/master/signal-queue.js';

const signals = SignalQueue.install();
const { main } = await import('../dist/src/cli/main.js');
main(process.argv.slice(2), signals);
