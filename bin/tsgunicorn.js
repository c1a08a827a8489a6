#!/usr/bin/env node
// The installed command: the compiled CLI does all the work.
import { main } from '../dist/src/cli.js';

main(process.argv.slice(2));
