import { ChangeDetectionStrategy, Component, computed, effect, inject, input, signal, untracked } from '@angular/core';
import { Title } from '@angular/platform-browser';
import { RouterLink } from '@angular/router';

import { DeliveryState, FormTaskStatus, type FormTaskSummary } from '../../gen/ramp/v1/form_pb';
import { ProcessState, type Process } from '../../gen/ramp/v1/process_pb';
import { describeError } from '../api/errors';
import { RampApi } from '../api/ramp-api.service';
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

const STATUS_TEXT: Record<FormTaskStatus, string> = {
  [FormTaskStatus.UNSPECIFIED]: 'unknown',
  [FormTaskStatus.PENDING]: 'pending',
  [FormTaskStatus.COMPLETED]: 'completed',
  [FormTaskStatus.WITHDRAWN]: 'withdrawn',
};

/** The badge colour of a form's status, from the process states' palette. */
const STATUS_CLASS: Record<FormTaskStatus, string> = {
  [FormTaskStatus.UNSPECIFIED]: 'state',
  [FormTaskStatus.PENDING]: 'state state-active',
  [FormTaskStatus.COMPLETED]: 'state state-completed',
  [FormTaskStatus.WITHDRAWN]: 'state state-cancelled',
};

const DELIVERY_TEXT: Record<DeliveryState, string> = {
  [DeliveryState.UNSPECIFIED]: 'unknown',
  [DeliveryState.PENDING]: 'pending',
  [DeliveryState.DELIVERED]: 'delivered',
  [DeliveryState.FAILED]: 'failed',
  [DeliveryState.UNDELIVERABLE]: 'undeliverable',
  [DeliveryState.REFUSED]: 'refused',
};

/** One process: what it is, where it stands, and its forms (those the caller may see). */
@Component({
  selector: 'ramp-process-page',
  imports: [RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <p class="back"><a routerLink="/processes">← Back to your processes</a></p>
    @if (error(); as e) {
      <p class="error" role="alert">{{ e }}</p>
    }
    @if (process(); as p) {
      <h1 data-testid="process-title">{{ name() }}</h1>
      <dl class="facts process-facts" data-testid="process-facts">
        <div>
          <dt>State</dt>
          <dd>
            <span [class]="'state state-' + stateText(p.state)" data-testid="process-state">{{ stateText(p.state) }}</span>
          </dd>
        </div>
        <div><dt>Started</dt><dd>{{ time(p.createTime) }}</dd></div>
        <div><dt>Started by</dt><dd>{{ p.startedBy || p.businessKey }}</dd></div>
        @if (p.endTime) {
          <div><dt>Ended</dt><dd>{{ time(p.endTime) }}</dd></div>
        }
        @if (p.endReason) {
          <div><dt>Reason</dt><dd>{{ p.endReason }}</dd></div>
        }
      </dl>

      <section aria-labelledby="forms-h">
        <div class="section-head">
          <h2 id="forms-h">Forms assigned to you</h2>
          <button type="button" (click)="reload()" [disabled]="loading()">Refresh</button>
        </div>
        <p class="muted">
          The forms of this process that are or were yours. Forms assigned to other people are not shown.
        </p>
        @if (loading() && forms().length === 0) {
          <p role="status">Loading the forms…</p>
        } @else if (forms().length === 0) {
          <p class="empty" data-testid="no-process-forms">None of this process's forms is assigned to you.</p>
        }
        <ul class="cards" aria-labelledby="forms-h" [attr.aria-busy]="loading()">
          @for (f of forms(); track f.id) {
            <li class="card" data-testid="process-form" [attr.data-form-name]="f.formName" [attr.data-form-id]="f.id">
              <div class="card-row">
                <a class="card-title" [routerLink]="['/forms', f.id]" data-testid="process-form-link">{{
                  f.title || f.taskName || f.formName
                }}</a>
                <span [class]="statusClass(f.status)" data-testid="process-form-status">{{ statusText(f.status) }}</span>
              </div>
              <dl class="facts">
                <div><dt>Assigned to</dt><dd>{{ f.assignee }}</dd></div>
                <div><dt>Since</dt><dd>{{ time(f.createTime) }}</dd></div>
                @if (f.status === completed) {
                  <div><dt>Submitted</dt><dd>{{ time(f.updateTime) }}</dd></div>
                }
                @if (f.deliveryState !== noDelivery) {
                  <div>
                    <dt>Delivery</dt>
                    <dd>
                      <span
                        [class]="'delivery delivery-' + delivery(f.deliveryState)"
                        data-testid="process-form-delivery"
                        >{{ delivery(f.deliveryState) }}</span
                      >
                    </dd>
                  </div>
                }
              </dl>
            </li>
          }
        </ul>
        @if (nextPageToken()) {
          <button type="button" (click)="load(nextPageToken())" [disabled]="loading()">Show more</button>
        }
      </section>
    } @else if (!error()) {
      <h1>Process</h1>
      <p role="status">Loading the process…</p>
    }
  `,
})
export class ProcessPage {
  /** The route's `:id` (ramp's process id). */
  readonly id = input.required<string>();

  private readonly api = inject(RampApi);
  private readonly title = inject(Title);

  readonly process = signal<Process | null>(null);
  readonly forms = signal<FormTaskSummary[]>([]);
  readonly nextPageToken = signal('');
  readonly loading = signal(false);
  readonly error = signal<string | null>(null);
  readonly completed = FormTaskStatus.COMPLETED;
  readonly noDelivery = DeliveryState.UNSPECIFIED;

  /** The model's name when a form carries it, else the definition key. */
  readonly name = computed(
    () => this.forms().find((f) => f.processName)?.processName || this.process()?.definitionKey || 'Process',
  );

  constructor() {
    effect(() => {
      const id = this.id();
      untracked(() => void this.open(id));
    });
    effect(() => {
      if (this.process()) {
        this.title.setTitle(`${this.name()} · ramp`);
      }
    });
  }

  stateText(state: ProcessState): string {
    return STATE_TEXT[state] ?? 'unknown';
  }

  statusText(status: FormTaskStatus): string {
    return STATUS_TEXT[status] ?? 'unknown';
  }

  statusClass(status: FormTaskStatus): string {
    return STATUS_CLASS[status] ?? 'state';
  }

  delivery(state: DeliveryState): string {
    return DELIVERY_TEXT[state] ?? 'unknown';
  }

  time(ts: Process['createTime']): string {
    return formatTime(timestampMs(ts));
  }

  private async open(id: string): Promise<void> {
    this.process.set(null);
    this.forms.set([]);
    this.error.set(null);
    try {
      const res = await this.api.processes.getProcess({ id });
      this.process.set(res.process ?? null);
      await this.load('');
    } catch (e) {
      this.error.set(describeError(e));
    }
  }

  async reload(): Promise<void> {
    const id = this.id();
    try {
      const res = await this.api.processes.getProcess({ id });
      this.process.set(res.process ?? null);
    } catch (e) {
      this.error.set(describeError(e));
      return;
    }
    await this.load('');
  }

  async load(pageToken: string): Promise<void> {
    const root = this.process()?.engineInstanceId ?? '';
    if (!root) {
      // Not in the engine yet (or never): no forms.
      this.forms.set([]);
      this.nextPageToken.set('');
      return;
    }
    this.loading.set(true);
    try {
      const res = await this.api.forms.listFormTasks({ pageSize: 100, pageToken, rootProcessInstanceId: root });
      this.forms.set(pageToken ? [...this.forms(), ...res.formTasks] : res.formTasks);
      this.nextPageToken.set(res.nextPageToken);
      this.error.set(null);
    } catch (e) {
      this.error.set(describeError(e));
    } finally {
      this.loading.set(false);
    }
  }
}
