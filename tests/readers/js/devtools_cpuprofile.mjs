// Load a .cpuprofile the way Chrome DevTools' Performance panel does, and print what it saw.
//
// DevTools' loader wraps a .cpuprofile in one synthetic trace event
// (SamplesIntegrator.createFakeTraceFromCpuProfile) and parses it with the trace engine
// marked as a CPU profile; the engine builds a CPUProfileDataModel and the profile calls
// (one per frame per run of samples) the flame chart draws. This prints, as JSON:
//   samples, timestamps (count), startTime/endTime (ms, as the model has them),
//   roots (names of the tree's top nodes), selfByName (self time in ms per function
//   name, from the profile calls), totalSelf, and any console errors the engine logged.
//
// Usage: node devtools_cpuprofile.mjs FILE.cpuprofile
import fs from 'node:fs';
import * as Trace from '@paulirish/trace_engine';

// The engine touches window.DOMRect; node has neither.
globalThis.window ??= globalThis;
globalThis.DOMRect ??= class DOMRect {
  constructor(x = 0, y = 0, width = 0, height = 0) { Object.assign(this, { x, y, width, height }); }
  static fromRect(r = {}) { return new DOMRect(r.x, r.y, r.width, r.height); }
};

const errors = [];
const origError = console.error;
console.error = (...a) => { errors.push(a.map(String).join(' ')); };

const profile = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { traceEvents, metadata } =
  Trace.Helpers.SamplesIntegrator.SamplesIntegrator.createFakeTraceFromCpuProfile(profile, Trace.Types.Events.ThreadID(1));
const model = Trace.TraceModel.Model.createWithAllHandlers();
await model.parse(traceEvents, { metadata, isCPUProfile: true });
const parsed = model.parsedTrace(0);
console.error = origError;

const byThread = parsed.data ? parsed.data.Samples.profilesInProcess : parsed.Samples.profilesInProcess;
const out = { threads: 0, errors };
for (const [, threads] of byThread) {
  for (const [, data] of threads) {
    out.threads += 1;
    const m = data.parsedProfile;
    out.samples = m.samples.length;
    out.timestamps = m.timestamps.length;
    out.startTime = m.profileStartTime;
    out.endTime = m.profileEndTime;
    out.rootName = m.root.callFrame.functionName;
    out.roots = m.root.children.map((n) => n.callFrame.functionName);
    out.totalHitCount = m.totalHitCount;
    // Self time per function name, from the nodes' self times (ms).
    const self = {};
    let total = 0;
    const walk = (n) => {
      const name = n.callFrame.functionName;
      self[name] = (self[name] || 0) + n.self;
      total += n.self;
      n.children.forEach(walk);
    };
    walk(m.root);
    out.selfByName = self;
    out.totalSelf = total;
    out.profileCalls = data.profileCalls.length;
    // Where the flame chart puts the first profile calls: (name, ts µs, dur µs).
    out.firstCalls = data.profileCalls.slice(0, 8).map((c) => [c.callFrame.functionName, c.ts, c.dur]);
  }
}
process.stdout.write(JSON.stringify(out));
