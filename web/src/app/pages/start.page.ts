import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { RouterLink } from '@angular/router';

import { type StartableProcess } from '../../gen/ramp/v1/process_service_pb';
import { describeError } from '../api/errors';
import { RampApi } from '../api/ramp-api.service';
import { SessionService } from '../auth/session.service';
import { uuid } from '../shared/util';

/**
 * What the user may start (ProcessService.ListStartableProcesses), by name and
 * description; one click starts one, with the user's email as business key.
 */
@Component({
  selector: 'ramp-start-page',
  imports: [RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h1>Start a process</h1>
    <p class="muted">Its first form comes to the inbox of whoever the process asks.</p>

    @if (started(); as s) {
      <p class="ok" role="status" data-testid="start-message">
        Started {{ s }}. <a routerLink="/inbox">Go to your inbox</a> or
        <a routerLink="/processes">see your processes</a>.
      </p>
    }
    @if (error(); as e) {
      <p class="error" role="alert">{{ e }}</p>
    }
    @if (loading()) {
      <p role="status">Loading what you may start…</p>
    } @else if (processes().length === 0 && !error()) {
      <p class="empty">There is nothing you may start.</p>
    }
    <ul class="cards" aria-label="Processes you may start">
      @for (p of processes(); track p.key) {
        <li class="card" data-testid="startable" [attr.data-key]="p.key">
          <div class="card-row">
            <h2 class="card-title" [id]="'startable-' + p.key">{{ p.name || p.key }}</h2>
            <button
              type="button"
              class="primary"
              data-testid="start-button"
              [disabled]="starting() !== null"
              [attr.aria-describedby]="'startable-' + p.key"
              (click)="start(p)"
            >
              {{ starting() === p.key ? 'Starting…' : 'Start' }}
            </button>
          </div>
          @if (p.description) {
            <p class="start-description">{{ p.description }}</p>
          }
        </li>
      }
    </ul>
  `,
})
export class StartPage {
  private readonly api = inject(RampApi);
  private readonly session = inject(SessionService);

  readonly processes = signal<StartableProcess[]>([]);
  readonly loading = signal(true);
  readonly error = signal<string | null>(null);
  readonly starting = signal<string | null>(null);
  readonly started = signal<string | null>(null);

  constructor() {
    void this.load();
  }

  private async load(): Promise<void> {
    try {
      const res = await this.api.processes.listStartableProcesses({});
      this.processes.set(res.processes);
    } catch (e) {
      this.error.set(describeError(e));
    } finally {
      this.loading.set(false);
    }
  }

  async start(p: StartableProcess): Promise<void> {
    const businessKey = this.session.email();
    this.started.set(null);
    this.error.set(null);
    if (!businessKey) {
      this.error.set('Your sign-in has no email, which the process needs.');
      return;
    }
    this.starting.set(p.key);
    try {
      await this.api.processes.startProcess({ definitionKey: p.key, businessKey, requestId: uuid() });
      this.started.set(p.name || p.key);
    } catch (e) {
      this.error.set(describeError(e));
    } finally {
      this.starting.set(null);
    }
  }
}
