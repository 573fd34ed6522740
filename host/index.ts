// The library entry point (`import { Engine, replayFile } from 'sessionlb'`).
export { Engine, type EngineOptions, type BackendRef, type FlowEvent } from './engine.js';
export { instantiate, loadModule, modulePath, ABI_VERSION, type EngineExports } from './wasm.js';
export { parseConfig, loadConfig, ConfigError, type Config, type VipConfig, type BackendConfig } from './ctl/config.js';
export { buildRing } from './ctl/maglev.js';
export { COUNTER_NAMES, DROP_NAMES, PASS_NAMES, VERDICT, EVENT } from './ctl/counters.js';
export { replayFile, type ReplayOptions, type ReplayResult } from './replay.js';
export { openCapture, CaptureError, type CaptureReader, type BatchTarget, type CaptureStats } from './io/capture.js';
export { type Report } from './report/report.js';
