/**
 * In-process counters with the same semantics as the Redis store (sliding one-minute request log, per-
 * minute token counter, per-window budget counters that need seeding, reservations held at admit and given
 * back at settle, idempotent settle). The embedded
 * default (`npm start`, no REDIS_URL) and the bounded local allowance while Redis is unreachable. Exact for
 * one process; several nodes each keep their own (which is why production uses Redis).
 */
import { MINUTE_MS, SETTLED_MARKER_MS, type AdmitPlan, type AdmitResult, type CounterStore, type SettlePlan } from './counters.js';

interface Expiring {
  value: number;
  expiresAt: number;
  /** Budget counters only: whether the persisted spend was added (see counters.ts). */
  seeded: boolean;
  /** Budget counters only: how much of `value` is reservations of calls still running. */
  reserved: number;
  /** Budget counters only: those reservations by request id, with the end of their lease. */
  leases?: Map<string, { nanos: number; leaseEnd: number }>;
}

/** Request times in arrival order; `head` skips those older than the window (dropped in bulk, not one shift each). */
interface RequestLog {
  times: number[];
  head: number;
}

export class MemoryCounterStore implements CounterStore {
  readonly #logs = new Map<string, RequestLog>();
  readonly #counters = new Map<string, Expiring>();
  readonly #settled = new Map<string, number>();
  #sweepAt = 0;

  constructor(private readonly now: () => number = Date.now) {}

  admit(plan: AdmitPlan): AdmitResult {
    const now = this.now();
    this.#sweep(now);
    let held = -1;
    for (let i = 0; i < plan.budgets.length; i++) {
      const b = plan.budgets[i]!;
      const counter = this.#live(b.counter, now);
      if (counter === undefined || !counter.seeded) return { kind: 'seed', index: i };
      if (counter.leases !== undefined) this.#expireLeases(counter, now);
      if (counter.value - counter.reserved >= b.maxNanos) return { kind: 'budget', index: i };
      if (counter.value >= b.maxNanos && held === -1) held = i;
    }
    if (held !== -1) return { kind: 'held', index: held };
    if (plan.tokensPerMinute !== null && (this.#live(plan.tokenCounter, now)?.value ?? 0) >= plan.tokensPerMinute) {
      return { kind: 'rate', retryAfterMs: MINUTE_MS - (now % MINUTE_MS) };
    }
    if (plan.requestsPerMinute !== null) {
      let log = this.#logs.get(plan.keyId);
      if (!log) this.#logs.set(plan.keyId, (log = { times: [], head: 0 }));
      const { times } = log;
      while (log.head < times.length && times[log.head]! <= now - MINUTE_MS) log.head++;
      if (log.head > 1024 && log.head * 2 > times.length) {
        times.splice(0, log.head);
        log.head = 0;
      }
      if (times.length - log.head >= plan.requestsPerMinute) {
        return { kind: 'rate', retryAfterMs: Math.max(1, times[log.head]! + MINUTE_MS - now) };
      }
      times.push(now);
    }
    if (plan.reserveNanos > 0) {
      for (const b of plan.budgets) {
        const counter = this.#add(b.counter, plan.reserveNanos, now + b.ttlMs, now);
        counter.reserved += plan.reserveNanos;
        (counter.leases ??= new Map()).set(plan.requestId, { nanos: plan.reserveNanos, leaseEnd: now + plan.leaseMs });
      }
    }
    return { kind: 'ok' };
  }

  settle(plan: SettlePlan): void {
    const now = this.now();
    const marker = `${plan.keyId}:${plan.requestId}`;
    if (this.#settled.has(marker)) return;
    this.#settled.set(marker, now + SETTLED_MARKER_MS);
    if (plan.tokens > 0) this.#add(plan.tokenCounter, plan.tokens, now + 2 * MINUTE_MS, now);
    for (const b of plan.budgets) {
      // Given back only where it is held (not by a counter that expired since, nor after its lease ran out).
      const counter = this.#live(b.counter, now);
      const lease = counter?.leases?.get(plan.requestId);
      if (counter !== undefined && lease !== undefined) this.#giveBack(counter, plan.requestId, lease.nanos);
      if (plan.costNanos > 0) this.#add(b.counter, plan.costNanos, now + b.ttlMs, now);
    }
  }

  seed(counter: string, nanos: number, ttlMs: number): void {
    const now = this.now();
    const existing = this.#live(counter, now);
    if (existing === undefined) this.#counters.set(counter, { value: nanos, expiresAt: now + ttlMs, seeded: true, reserved: 0 });
    else if (!existing.seeded) {
      existing.value += nanos;
      existing.seeded = true;
    }
  }

  async close(): Promise<void> {
    this.#logs.clear();
    this.#counters.clear();
  }

  #giveBack(counter: Expiring, requestId: string, nanos: number): void {
    counter.value -= nanos;
    counter.reserved -= nanos;
    counter.leases!.delete(requestId);
  }

  /** Reservations of calls that never settled (their node died) are given back once their lease is over. */
  #expireLeases(counter: Expiring, now: number): void {
    for (const [requestId, lease] of counter.leases!) if (lease.leaseEnd <= now) this.#giveBack(counter, requestId, lease.nanos);
  }

  #live(counter: string, now: number): Expiring | undefined {
    const c = this.#counters.get(counter);
    return c !== undefined && c.expiresAt > now ? c : undefined;
  }

  // A settle against an unseeded counter still counts (it is seeded later on top of it), as in Redis.
  #add(counter: string, amount: number, expiresAt: number, now: number): Expiring {
    const c = this.#counters.get(counter);
    if (c !== undefined && c.expiresAt > now) {
      c.value += amount;
      return c;
    }
    const created = { value: amount, expiresAt, seeded: false, reserved: 0 };
    this.#counters.set(counter, created);
    return created;
  }

  /** Drops expired entries at most once a minute, so memory stays bounded by the live windows. */
  #sweep(now: number): void {
    if (now < this.#sweepAt) return;
    this.#sweepAt = now + MINUTE_MS;
    for (const [k, c] of this.#counters) if (c.expiresAt <= now) this.#counters.delete(k);
    for (const [k, t] of this.#settled) if (t <= now) this.#settled.delete(k);
    for (const [k, log] of this.#logs) if (log.times.length === log.head || log.times[log.times.length - 1]! <= now - MINUTE_MS) this.#logs.delete(k);
  }
}
