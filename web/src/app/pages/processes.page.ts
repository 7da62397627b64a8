import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  effect,
  inject,
  signal,
  untracked,
} from '@angular/core';

import { ProcessState, type Process } from '../../gen/ramp/v1/process_pb';
import { describeError } from '../api/errors';
import { RampApi } from '../api/ramp-api.service';
import { SessionService } from '../auth/session.service';
import { InboxService } from '../inbox/inbox.service';
import { formatTime, timestampMs, uuid } from '../shared/util';

const STATE_TEXT: Record<ProcessState, string> = {
  [ProcessState.UNSPECIFIED]: 'unknown',
  [ProcessState.STARTING]: 'starting',
  [ProcessState.ACTIVE]: 'active',
  [ProcessState.COMPLETED]: 'completed',
  [ProcessState.CANCELLED]: 'cancelled',
  [ProcessState.TERMINATED]: 'terminated',
  [ProcessState.FAILED]: 'failed',
};

@Component({
  selector: 'ramp-processes-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h1>Processes</h1>

    <section class="panel" aria-labelledby="start-h">
      <h2 id="start-h">Start a process</h2>
      <form class="inline-form" (submit)="start($event)" novalidate>
        <div class="field">
          <label for="definition-key">Process definition key</label>
          <input
            id="definition-key"
            name="definitionKey"
            required
            autocomplete="off"
            data-testid="start-definition"
            [value]="definitionKey()"
            (input)="definitionKey.set(value($event))"
          />
        </div>
        <button type="submit" class="primary" data-testid="start-process" [disabled]="starting()">
          {{ starting() ? 'Starting…' : 'Start process' }}
        </button>
      </form>
      <p class="muted">Business key: {{ session.email() ?? 'unknown (the token has no email)' }}</p>
      @if (startMessage(); as m) {
        <p class="ok" role="status">{{ m }}</p>
      }
      @if (startError(); as e) {
        <p class="error" role="alert">{{ e }}</p>
      }
    </section>

    <section aria-labelledby="list-h">
      <div class="section-head">
        <h2 id="list-h">Your processes</h2>
        <button type="button" (click)="reload()" [disabled]="loading()">Refresh</button>
      </div>
      @if (listError(); as e) {
        <p class="error" role="alert">{{ e }}</p>
      }
      @if (processes().length === 0 && !loading()) {
        <p class="empty">You have not started any process yet.</p>
      }
      <ul class="cards" aria-label="Processes" [attr.aria-busy]="loading()">
        @for (p of processes(); track p.id) {
          <li class="card" data-testid="process-item" [attr.data-process-id]="p.id">
            <div class="card-row">
              <span class="card-title">{{ p.definitionKey }}</span>
              <span [class]="'state state-' + stateText(p.state)" data-testid="process-state">{{
                stateText(p.state)
              }}</span>
            </div>
            <dl class="facts">
              <div><dt>Business key</dt><dd>{{ p.businessKey }}</dd></div>
              <div><dt>Started</dt><dd>{{ time(p.createTime) }}</dd></div>
              @if (p.endTime) {
                <div><dt>Ended</dt><dd>{{ time(p.endTime) }}</dd></div>
              }
              @if (p.endReason) {
                <div><dt>Reason</dt><dd>{{ p.endReason }}</dd></div>
              }
            </dl>
            @if (cancellable(p)) {
              <button
                type="button"
                class="danger"
                data-testid="cancel-process"
                [disabled]="cancelling() === p.id"
                [attr.aria-label]="'Cancel process ' + p.definitionKey + ' started ' + time(p.createTime)"
                (click)="cancel(p)"
              >
                {{ cancelling() === p.id ? 'Cancelling…' : 'Cancel' }}
              </button>
            }
          </li>
        }
      </ul>
      @if (nextPageToken()) {
        <button type="button" (click)="more()" [disabled]="loading()">Show more</button>
      }
    </section>
  `,
})
export class ProcessesPage {
  readonly session = inject(SessionService);
  private readonly api = inject(RampApi);
  private readonly inbox = inject(InboxService);

  readonly definitionKey = signal('VOE');
  readonly starting = signal(false);
  readonly startMessage = signal<string | null>(null);
  readonly startError = signal<string | null>(null);

  readonly processes = signal<Process[]>([]);
  readonly nextPageToken = signal('');
  readonly loading = signal(false);
  readonly listError = signal<string | null>(null);
  readonly cancelling = signal<string | null>(null);

  private reloadTimer: ReturnType<typeof setTimeout> | undefined;

  constructor() {
    // Forms coming and going mean processes moved on: refresh (debounced). This
    // also does the first load.
    effect(() => {
      this.inbox.version();
      untracked(() => this.scheduleReload(this.processes().length ? 500 : 0));
    });
    inject(DestroyRef).onDestroy(() => clearTimeout(this.reloadTimer));
  }

  value(ev: Event): string {
    return (ev.target as HTMLInputElement).value;
  }

  stateText(state: ProcessState): string {
    return STATE_TEXT[state] ?? 'unknown';
  }

  time(ts: Process['createTime']): string {
    return formatTime(timestampMs(ts));
  }

  cancellable(p: Process): boolean {
    return p.state === ProcessState.ACTIVE || p.state === ProcessState.STARTING;
  }

  private scheduleReload(ms: number): void {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => void this.reload(), ms);
  }

  async reload(): Promise<void> {
    await this.load('');
  }

  async more(): Promise<void> {
    await this.load(this.nextPageToken());
  }

  private async load(pageToken: string): Promise<void> {
    this.loading.set(true);
    try {
      const res = await this.api.processes.listProcesses({
        pageSize: 50,
        pageToken,
        businessKey: this.session.email() ?? '',
      });
      this.processes.set(pageToken ? [...this.processes(), ...res.processes] : res.processes);
      this.nextPageToken.set(res.nextPageToken);
      this.listError.set(null);
    } catch (e) {
      this.listError.set(describeError(e));
    } finally {
      this.loading.set(false);
    }
  }

  async start(ev: Event): Promise<void> {
    ev.preventDefault();
    const definitionKey = this.definitionKey().trim();
    const businessKey = this.session.email();
    this.startMessage.set(null);
    this.startError.set(null);
    if (!definitionKey) {
      this.startError.set('Enter a process definition key.');
      return;
    }
    if (!businessKey) {
      this.startError.set('Your sign-in has no email, which is the business key.');
      return;
    }
    this.starting.set(true);
    try {
      const res = await this.api.processes.startProcess({
        definitionKey,
        businessKey,
        requestId: uuid(),
      });
      const p = res.process;
      this.startMessage.set(`Started ${p?.definitionKey ?? definitionKey}: ${p ? this.stateText(p.state) : ''}.`);
      await this.reload();
    } catch (e) {
      this.startError.set(describeError(e));
    } finally {
      this.starting.set(false);
    }
  }

  async cancel(p: Process): Promise<void> {
    this.cancelling.set(p.id);
    this.listError.set(null);
    try {
      const res = await this.api.processes.cancelProcess({ id: p.id, reason: 'cancelled by the user in the web UI' });
      if (res.process) {
        const updated = res.process;
        this.processes.update((list) => list.map((x) => (x.id === updated.id ? updated : x)));
      }
      await this.reload();
    } catch (e) {
      this.listError.set(describeError(e));
    } finally {
      this.cancelling.set(null);
    }
  }
}
