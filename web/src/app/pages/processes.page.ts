import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  effect,
  inject,
  signal,
  untracked,
} from '@angular/core';

import { RouterLink } from '@angular/router';

import { ProcessState, type Process } from '../../gen/ramp/v1/process_pb';
import { describeError } from '../api/errors';
import { RampApi } from '../api/ramp-api.service';
import { SessionService } from '../auth/session.service';
import { InboxService } from '../inbox/inbox.service';
import { formatTime, timestampMs } from '../shared/util';

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
  imports: [RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h1>Your processes</h1>

    <p><a routerLink="/start" data-testid="go-start">Start a process</a></p>

    <section aria-labelledby="list-h">
      <div class="section-head">
        <h2 id="list-h" class="visually-hidden">Your processes</h2>
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
              <a class="card-title" [routerLink]="['/processes', p.id]" data-testid="process-link">{{ p.definitionKey }}</a>
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
              @if (confirming() === p.id) {
                <div class="confirm" role="group" [attr.aria-labelledby]="'confirm-' + p.id" data-testid="cancel-confirmation">
                  <p [id]="'confirm-' + p.id">
                    <strong>Cancel this process?</strong> It stops for good, and the forms it is
                    waiting for are withdrawn from everyone's inbox.
                  </p>
                  <div class="actions">
                    <button
                      type="button"
                      class="danger"
                      data-testid="confirm-cancel"
                      [disabled]="cancelling() === p.id"
                      (click)="cancel(p)"
                    >
                      {{ cancelling() === p.id ? 'Cancelling…' : 'Yes, cancel it' }}
                    </button>
                    <button type="button" data-testid="keep-process" [disabled]="cancelling() === p.id" (click)="keep(p)">
                      No, keep it
                    </button>
                  </div>
                </div>
              } @else {
                <button
                  type="button"
                  class="danger"
                  data-testid="cancel-process"
                  [attr.data-cancel-for]="p.id"
                  [attr.aria-label]="'Cancel process ' + p.definitionKey + ' started ' + time(p.createTime)"
                  (click)="ask(p)"
                >
                  Cancel…
                </button>
              }
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


  readonly processes = signal<Process[]>([]);
  readonly nextPageToken = signal('');
  readonly loading = signal(false);
  readonly listError = signal<string | null>(null);
  readonly cancelling = signal<string | null>(null);
  /** The process whose Cancel asks for confirmation. */
  readonly confirming = signal<string | null>(null);

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

  /** Cancel asks first: the question and its buttons show in the card. */
  ask(p: Process): void {
    this.confirming.set(p.id);
    setTimeout(() => document.querySelector<HTMLElement>('[data-testid="confirm-cancel"]')?.focus());
  }

  keep(p: Process): void {
    this.confirming.set(null);
    setTimeout(() => document.querySelector<HTMLElement>(`[data-cancel-for="${p.id}"]`)?.focus());
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
      this.confirming.set(null);
    }
  }
}
