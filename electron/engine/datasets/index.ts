export * from './types.js';
export * from './shapes.js';
export * from './loaders.js';
export * from './sampler.js';
