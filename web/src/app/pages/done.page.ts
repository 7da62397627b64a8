import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { RouterLink } from '@angular/router';

import { DeliveryState, FormTaskStatus, type FormTaskSummary } from '../../gen/ramp/v1/form_pb';
import { describeError } from '../api/errors';
import { RampApi } from '../api/ramp-api.service';
import { SessionService } from '../auth/session.service';
import { formatTime, timestampMs } from '../shared/util';

const DELIVERY_TEXT: Record<DeliveryState, string> = {
  [DeliveryState.UNSPECIFIED]: 'unknown',
  [DeliveryState.PENDING]: 'pending',
  [DeliveryState.DELIVERED]: 'delivered',
  [DeliveryState.FAILED]: 'failed',
  [DeliveryState.UNDELIVERABLE]: 'undeliverable',
  [DeliveryState.REFUSED]: 'refused',
};

/** The user's completed forms, newest first; each opens with its answers. */
@Component({
  selector: 'ramp-done-page',
  imports: [RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h1>Completed forms</h1>
    <p class="muted">The forms you submitted. Open one to see your answers as you sent them.</p>
    @if (error(); as e) {
      <p class="error" role="alert">{{ e }}</p>
    }
    @if (loading() && forms().length === 0) {
      <p role="status">Loading your completed forms…</p>
    } @else if (forms().length === 0 && !error()) {
      <p class="empty">You have not submitted any form yet.</p>
    }
    <ul class="cards" aria-label="Completed forms">
      @for (f of forms(); track f.id) {
        <li class="card" data-testid="done-item" [attr.data-form-name]="f.formName" [attr.data-form-id]="f.id">
          <div class="card-row">
            <a class="card-title" [routerLink]="['/forms', f.id]">{{ f.title || f.taskName || f.formName }}</a>
            <span
              [class]="'delivery delivery-' + delivery(f.deliveryState)"
              data-testid="done-delivery"
              [attr.aria-label]="'Delivery to the process: ' + delivery(f.deliveryState)"
              >{{ delivery(f.deliveryState) }}</span
            >
          </div>
          <p class="card-sub">
            {{ f.processName || f.processDefinitionKey || 'A process' }}
            @if (f.context) {
              · {{ f.context }}
            }
          </p>
          <dl class="facts">
            <div><dt>Started by</dt><dd>{{ f.businessKey }}</dd></div>
            <div><dt>Submitted</dt><dd>{{ time(f.updateTime) }}</dd></div>
          </dl>
        </li>
      }
    </ul>
    @if (nextPageToken()) {
      <button type="button" (click)="load(nextPageToken())" [disabled]="loading()">Show more</button>
    }
  `,
})
export class DonePage {
  private readonly api = inject(RampApi);
  private readonly session = inject(SessionService);

  readonly forms = signal<FormTaskSummary[]>([]);
  readonly nextPageToken = signal('');
  readonly loading = signal(false);
  readonly error = signal<string | null>(null);

  constructor() {
    void this.load('');
  }

  delivery(state: DeliveryState): string {
    return DELIVERY_TEXT[state] ?? 'unknown';
  }

  time(ts: FormTaskSummary['updateTime']): string {
    return formatTime(timestampMs(ts));
  }

  async load(pageToken: string): Promise<void> {
    this.loading.set(true);
    try {
      const res = await this.api.forms.listFormTasks({
        pageSize: 50,
        pageToken,
        assignee: this.session.email() ?? '',
        statuses: [FormTaskStatus.COMPLETED],
      });
      // The API lists oldest first: the page shows the newest first.
      const page = [...res.formTasks].reverse();
      this.forms.set(pageToken ? [...this.forms(), ...page] : page);
      this.nextPageToken.set(res.nextPageToken);
      this.error.set(null);
    } catch (e) {
      this.error.set(describeError(e));
    } finally {
      this.loading.set(false);
    }
  }
}
