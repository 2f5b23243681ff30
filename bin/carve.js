#!/usr/bin/env node
// carve is written in TypeScript and runs through tsx's loader, so `npx carve` needs no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
