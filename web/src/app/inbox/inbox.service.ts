import { Injectable, computed, inject, signal } from '@angular/core';
import { Code, ConnectError } from '@connectrpc/connect';

import { describeError } from '../api/errors';
import { RampApi } from '../api/ramp-api.service';
import { SessionService } from '../auth/session.service';
import { SnapshotPages, applyEvent, type InboxItem, type InboxStatus } from './inbox-state';

/** The channel the tabs of one browser share; messages name their user. */
export const INBOX_CHANNEL = 'ramp-inbox';
/** The Web Lock the leader tab holds while it owns the stream. One per user, so two
 * tabs signed in as different people (dev mode, tests) each get their own stream. */
export function inboxLockName(user: string): string {
  return `${INBOX_CHANNEL}:${user}`;
}

/** What tabs say to each other. */
type TabMessage =
  | { type: 'hello'; user: string; from: string }
  | { type: 'fresh'; user: string; from: string }
  | {
      type: 'state';
      user: string;
      from: string;
      items: InboxItem[];
      cursor: string;
      status: InboxStatus;
      error: string | null;
    };

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;

/** Exponential backoff with jitter: about 1 s, 2 s, 4 s ... up to 30 s. */
export function backoffMs(attempt: number): number {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(attempt, 16));
  return Math.round(base * (0.5 + Math.random() / 2));
}

/** One started inbox: the user it is for and what stops it. */
interface Run {
  user: string;
  stop: AbortController;
  channel: BroadcastChannel | null;
  /** Whether the stream is shared through the Web Lock (else this tab's own). */
  shared: boolean;
  /** Set while the leader waits for new credentials: hands the stream over. */
  abdicate: (() => void) | null;
}

/**
 * The live list of the signed-in user's pending forms, from ONE
 * FormService.PendingForms stream per browser.
 *
 * Every tab asks for the Web Lock `ramp-inbox:<email>`; the tab that gets it (the
 * leader) opens the stream, applies snapshot/added/updated/removed, and broadcasts
 * the whole state (forms, cursor, connection status) over the BroadcastChannel
 * `ramp-inbox` after every message. The other tabs wait in the lock's queue and
 * show what they hear; a tab that starts says "hello" and the leader answers with
 * its state. When the leader closes (or signs out), the lock passes to a waiting
 * tab, which resumes the stream from the last cursor it heard.
 *
 * The leader reconnects after any break with the last cursor, with exponential
 * backoff (at once when the browser comes back online). When the stream ends with
 * UNAUTHENTICATED it re-reads the credentials (asking the OIDC library to renew)
 * and reconnects; when there is nothing new it waits for the user to sign in again,
 * in this tab (it reconnects with the same cursor) or in another one (that tab says
 * "fresh" and the leader hands the lock over to it, queueing again behind it).
 */
@Injectable({ providedIn: 'root' })
export class InboxService {
  private readonly api = inject(RampApi);
  private readonly session = inject(SessionService);
  private readonly tabId = Math.random().toString(36).slice(2);

  readonly items = signal<InboxItem[]>([]);
  readonly status = signal<InboxStatus>('connecting');
  readonly error = signal<string | null>(null);
  /** Whether this tab holds the stream. */
  readonly leader = signal(false);
  readonly count = computed(() => this.items().length);
  /** Bumped whenever the list changes (pages that depend on it refresh). */
  readonly version = signal(0);

  private cursor = '';
  private run: Run | null = null;
  /** The credentials ramp last refused in this tab, and those last offered to a
   * leader: neither is offered (again), so tabs never pass the stream back and
   * forth with credentials that do not work. */
  private refused: string | null = null;
  private offered: string | null = null;
  /** The tab that leads, as its last state message said. */
  private leaderTab = '';
  private readonly wakers = new Set<() => void>();

  constructor() {
    // Listeners run synchronously, in order: this one stops a run for another user
    // before a waiting stream loop wakes up for the new credentials.
    this.session.onChange(() => this.sync());
    this.sync();
    window.addEventListener('online', () => this.wake());
  }

  /** Starts, stops or switches the inbox when the signed-in user changes. The same
   * user signing in again keeps the list; the stream reconnects with the new
   * credentials from its cursor. */
  private sync(): void {
    const s = this.session.session();
    const user = s ? (s.email ?? '') : null;
    if (user !== (this.run?.user ?? null)) {
      this.restart(user);
    } else if (this.run && !this.leader() && this.status() === 'unauthenticated') {
      // Same user, new credentials in a tab that only listens: a leader stuck
      // without valid credentials hands the stream over to this tab.
      void this.offerCredentials(this.run);
    }
  }

  /** Tells a leader that has no valid credentials that this tab may have some. */
  private async offerCredentials(run: Run): Promise<void> {
    const credential = await this.session.credential();
    // Offered once per leader: the lock may go to another stuck tab first.
    const offer = `${this.leaderTab} ${credential}`;
    if (
      run !== this.run ||
      this.leader() ||
      !credential ||
      credential === this.refused ||
      offer === this.offered ||
      !this.session.credentialLooksValid()
    ) {
      return;
    }
    this.offered = offer;
    this.post(run, { type: 'fresh', user: run.user, from: this.tabId });
  }

  private wake(): void {
    for (const w of [...this.wakers]) {
      w();
    }
  }

  /** Stops the current inbox and, for a signed-in user, starts one for them. */
  private restart(user: string | null): void {
    if (this.run) {
      this.run.stop.abort();
      this.run.channel?.close();
      this.run = null;
    }
    this.items.set([]);
    this.cursor = '';
    this.refused = null;
    this.offered = null;
    this.leaderTab = '';
    this.status.set('connecting');
    this.error.set(null);
    this.leader.set(false);
    this.version.update((v) => v + 1);
    if (user === null) {
      return;
    }
    const run: Run = {
      user,
      stop: new AbortController(),
      channel: typeof BroadcastChannel === 'function' ? new BroadcastChannel(INBOX_CHANNEL) : null,
      shared: false,
      abdicate: null,
    };
    this.run = run;
    if (run.channel) {
      run.channel.onmessage = (ev: MessageEvent<TabMessage>) => this.onTabMessage(run, ev.data);
      this.post(run, { type: 'hello', user, from: this.tabId });
    }

    this.requestLock(run);
  }

  /**
   * Queues for the Web Lock; this tab leads while it holds it. Without Web Locks
   * (plain http on a host other than localhost is not a secure context) or without
   * BroadcastChannel, the tab keeps a stream of its own.
   */
  private requestLock(run: Run): void {
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
    if (!locks || !run.channel) {
      run.shared = false;
      void this.lead(run);
      return;
    }
    run.shared = true;
    locks
      .request(inboxLockName(run.user), { signal: run.stop.signal }, () => this.lead(run))
      .then(async (outcome) => {
        // (The DOM typings wrap the callback's promise once more.)
        if ((await outcome) === 'abdicated' && run === this.run && !run.stop.signal.aborted) {
          // Back in the queue, behind the tab with fresh credentials.
          this.requestLock(run);
        }
      })
      .catch((e: unknown) => {
        if (!run.stop.signal.aborted) {
          console.warn('ramp: inbox lock unavailable, using a stream of this tab', e);
          run.shared = false;
          void this.lead(run);
        }
      });
  }

  private post(run: Run, msg: TabMessage): void {
    try {
      run.channel?.postMessage(msg);
    } catch {
      // the channel is closed: this run is over
    }
  }

  private broadcast(run: Run): void {
    this.post(run, {
      type: 'state',
      user: run.user,
      from: this.tabId,
      items: this.items(),
      cursor: this.cursor,
      status: this.status(),
      error: this.error(),
    });
  }

  private onTabMessage(run: Run, msg: TabMessage): void {
    if (run !== this.run || !msg || msg.user !== run.user || msg.from === this.tabId) {
      return;
    }
    if (msg.type === 'hello') {
      if (this.leader()) {
        this.broadcast(run);
      }
      return;
    }
    if (msg.type === 'fresh') {
      run.abdicate?.();
      return;
    }
    if (msg.type === 'state' && !this.leader()) {
      this.leaderTab = msg.from;
      const changed = msg.items !== this.items();
      this.items.set(msg.items);
      this.cursor = msg.cursor;
      this.status.set(msg.status);
      this.error.set(msg.error);
      if (changed) {
        this.version.update((v) => v + 1);
      }
      if (msg.status === 'unauthenticated') {
        void this.offerCredentials(run);
      } else {
        // The leader is fine again: a later refusal is a new one to offer for.
        this.offered = null;
      }
    }
  }

  /** Holds the stream until the run stops or hands it over (the Web Lock is held
   * as long as this runs). */
  private async lead(run: Run): Promise<'stopped' | 'abdicated'> {
    if (run.stop.signal.aborted || run !== this.run) {
      return 'stopped';
    }
    this.leader.set(true);
    // What this tab heard as a follower (say "offline") is not this stream's state.
    this.status.set('connecting');
    this.error.set(null);
    this.broadcast(run);
    try {
      return await this.streamLoop(run);
    } finally {
      if (run === this.run) {
        this.leader.set(false);
      }
    }
  }

  private setStatus(run: Run, status: InboxStatus, error: string | null): void {
    if (run !== this.run) {
      return;
    }
    this.status.set(status);
    this.error.set(error);
    this.broadcast(run);
  }

  private async streamLoop(run: Run): Promise<'stopped' | 'abdicated'> {
    const signal = run.stop.signal;
    let attempt = 0;
    while (!signal.aborted) {
      const used = await this.session.credential();
      try {
        const stream = this.api.forms.pendingForms(
          { cursor: this.cursor },
          {
            signal,
            // A resumed stream may send nothing until something changes (or the
            // next heartbeat): the response headers already say it is open.
            onHeader: (headers) => {
              if (!headers.has('grpc-status') && run === this.run && this.status() !== 'online') {
                attempt = 0;
                this.setStatus(run, 'online', null);
              }
            },
          },
        );
        // A large inbox's snapshot comes in pages: the list is replaced once, when
        // the last arrives (with the cursor); a stream that breaks before drops them.
        const pages = new SnapshotPages();
        for await (const received of stream) {
          if (signal.aborted || run !== this.run) {
            return 'stopped';
          }
          attempt = 0;
          const msg = pages.take(received);
          if (msg === null) {
            continue;
          }
          const before = this.items();
          const after = applyEvent(before, msg);
          this.items.set(after);
          if (msg.cursor) {
            this.cursor = msg.cursor;
          }
          this.status.set('online');
          this.error.set(null);
          if (after !== before || msg.event.case === 'snapshot') {
            this.version.update((v) => v + 1);
          }
          this.broadcast(run);
        }
        if (signal.aborted) {
          return 'stopped';
        }
        this.setStatus(run, 'offline', 'The connection closed.');
      } catch (e) {
        if (signal.aborted) {
          return 'stopped';
        }
        const err = ConnectError.from(e);
        if (err.code === Code.Unauthenticated) {
          if (await this.session.renew(used)) {
            // New credentials: reconnect now (after a short pause if this repeats).
            if (attempt > 0) {
              await this.pause(backoffMs(attempt - 1), signal);
            }
            attempt++;
            continue;
          }
          this.refused = used;
          this.setStatus(run, 'unauthenticated', describeError(err));
          if ((await this.credentialsChange(run)) === 'abdicate') {
            return 'abdicated';
          }
          attempt = 0;
          continue;
        }
        this.setStatus(run, 'offline', describeError(err));
      }
      await this.pause(backoffMs(attempt), signal);
      attempt++;
    }
    return 'stopped';
  }

  /** Waits ms, or less when the run stops or the browser comes back online. */
  private pause(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
      signal.addEventListener('abort', done, { once: true });
      if (signal.aborted) {
        done();
      }
    });
  }

  /** Waits until this tab's credentials change, another tab has fresh ones
   * ('abdicate'), or the run stops. */
  private credentialsChange(run: Run): Promise<'changed' | 'abdicate'> {
    const signal = run.stop.signal;
    return new Promise((resolve) => {
      const finish = (outcome: 'changed' | 'abdicate') => {
        off();
        run.abdicate = null;
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = () => finish('changed');
      const off = this.session.onChange(() => finish('changed'));
      if (run.shared) {
        run.abdicate = () => finish('abdicate');
      }
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) {
        onAbort();
      }
    });
  }
}
