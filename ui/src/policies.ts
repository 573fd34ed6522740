// The three policies side by side, as `sessionlb evaluate` compares them: the capture replayed
// with every VIP set to flow, client and session. Integrity uses the session run's
// session -> flows mapping as ground truth (host/eval/evaluate.ts sessionsFromFlows + integrity);
// fairness is report.json's (Jain's index and max/mean of weight-normalised load per backend).
import type { Config, Policy, Scheduler } from '../../host/ctl/config.js';
import { backendsByKey, integrity, sessionsFromFlows } from '../../host/eval/evaluate.js';
import type { Report } from '../../host/report/report.js';
import { runCapture, type RunResult } from './run.js';

export interface PolicyRow {
  policy: Policy;
  scheduler: Scheduler;
  integrity: number | null; // null: no session seen
  whole: number;
  seen: number;
  fairness: Report['fairness'];
  report: Report;
}

/**
 * flow and session keep the chosen scheduler; client is source hashing (scheduler sh, what the
 * engine does for that policy whatever the scheduler), as `sessionlb evaluate` runs it.
 */
export function policyRuns(scheduler: Scheduler): { policy: Policy; scheduler: Scheduler }[] {
  return [
    { policy: 'flow', scheduler },
    { policy: 'client', scheduler: 'sh' },
    { policy: 'session', scheduler },
  ];
}

export function withPolicy(config: Config, run: { policy: Policy; scheduler: Scheduler }): Config {
  return { ...config, vips: config.vips.map((v) => ({ ...v, policy: run.policy, scheduler: run.scheduler })) };
}

/**
 * Runs the three policies. `reuse` is a run already made with one of them (same capture and
 * config apart from policy and scheduler), not replayed again.
 */
export function comparePolicies(
  module: WebAssembly.Module, path: string, config: Config, scheduler: Scheduler,
  reuse?: { policy: Policy; scheduler: Scheduler; result: RunResult },
): PolicyRow[] {
  const runs = policyRuns(scheduler).map((run) => {
    const result = reuse && reuse.policy === run.policy && reuse.scheduler === run.scheduler
      ? reuse.result
      : runCapture(module, path, withPolicy(config, run));
    return { run, result };
  });
  const sessionRun = runs.find((r) => r.run.policy === 'session')!;
  const sessions = sessionsFromFlows(sessionRun.result.flows, config);
  return runs.map(({ run, result }) => {
    const ig = integrity(sessions, backendsByKey(result.flows));
    return {
      policy: run.policy, scheduler: run.scheduler, integrity: ig.integrity, whole: ig.whole, seen: ig.sessions,
      fairness: result.report.fairness, report: result.report,
    };
  });
}
