// Names of the engine's counters, drop reasons and pass reasons, in index order
// (assembly/counters.ts). The host owns the names; the engine only counts.

export const COUNTER_NAMES = [
  'rx-packets', 'rx-bytes', 'tx-backend', 'tx-client', 'passed', 'dropped',
  'flows-created', 'flows-closed', 'flows-expired', 'flow-table-full', 'flows-evicted',
  'flows-resteered', 'flows-midstream', 'flows-reused', 'frag-tracked', 'frag-followed',
  'frag-table-full', 'icmp-followed', 'events-lost', 'encapsulated', 'nat-rewrites', 'batches',
  'stateless', 'reply-from-backend', 'l2-converted', 'flow-hits',
  'sessions-started', 'sessions-completed', 'sessions-timed-out', 'sessions-control-lost', 'sessions-refused',
  'session-table-full', 'expectations-created', 'expectations-matched', 'expectations-unused',
  'expectations-existing', 'rtsp-messages', 'rtsp-errors', 'rtsp-partial', 'rtsp-interleaved',
  'rtsp-reasm-held', 'rtsp-reasm-dropped', 'rtsp-reasm-overflow', 'rtsp-reasm-slots-full',
  'rtsp-reasm-retransmits', 'rtsp-reasm-buffers-full', 'rtsp-reasm-truncated',
  'rtsp-nat-rewrites', 'rtsp-nat-reapplied', 'rtsp-nat-missed', 'rtsp-nat-resized', 'rtsp-nat-bytes-added',
  'rtsp-nat-bytes-removed', 'seqadj-adjusted',
] as const;

export const DROP_NAMES = [
  'none', 'truncated', 'linktype', 'bad-ip', 'no-service', 'no-backend', 'frag-orphan', 'too-big',
  'bad-l4', 'admission', 'splice',
] as const;

export const PASS_NAMES = ['none', 'not-ip', 'not-vip', 'icmp-to-vip', 'icmp-no-flow'] as const;

export const VERDICT = { DROP: 0, BACKEND: 1, CLIENT: 2, PASS: 3 } as const;

export const EVENT = { FLOW_CREATED: 1, FLOW_CLOSED: 2, FLOW_RESTEERED: 3, BACKEND_STATE: 4, SESSION_STARTED: 5, SESSION_ENDED: 6 } as const;
export const CLOSE_REASONS = ['none', 'expired', 'evicted', 'reused', 'flush', 'unused-expectation'] as const;
export const SESSION_END_REASONS = ['none', 'teardown', 'timeout', 'control-lost', 'end-of-input'] as const;
