// Child process for bench/forward: resident memory after loading the model and binding its weights.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelDir } from '../src/model/load.ts';
import { HookedModel } from '../src/model/hooked.ts';
import { Engine } from '../src/onnx/session.ts';

const dir = process.argv[2];
const before = process.memoryUsage().rss;
const model = new HookedModel(loadModelDir(dir, 'bench'), new Engine());
const after = process.memoryUsage().rss;
const size = statSync(join(dir, 'model.safetensors')).size;
process.stdout.write(JSON.stringify({ rssBefore: before, rssAfter: after, fileSize: size, layers: model.config.nLayer }) + '\n');
