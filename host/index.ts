// The library entry point (`import { Engine, replayFile } from 'sessionlb'`).
export {
  Engine, SESSION_STATES, type EngineOptions, type BackendRef, type FlowEvent, type FrameInput, type FrameResult, type Verdict,
  type EngineEvent, type SessionRecord,
} from './engine.js';
export { instantiate, loadModule, modulePath, ABI_VERSION, type EngineExports } from './wasm.js';
export { parseConfig, loadConfig, ConfigError, type Config, type VipConfig, type BackendConfig } from './ctl/config.js';
export { buildRing } from './ctl/maglev.js';
export { COUNTER_NAMES, DROP_NAMES, PASS_NAMES, VERDICT, EVENT, CLOSE_REASONS, SESSION_END_REASONS } from './ctl/counters.js';
export { replayFile, type ReplayOptions, type ReplayResult } from './replay.js';
export { openCapture, CaptureError, type CaptureReader, type BatchTarget, type CaptureStats } from './io/capture.js';
export { type Report } from './report/report.js';
