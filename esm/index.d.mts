// Types of the ES module entry point: those of the CommonJS one (no default export).
export * from '../index.js'
