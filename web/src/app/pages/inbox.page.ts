import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { RouterLink } from '@angular/router';

import { segments, shortReason } from '../form/outcome';
import { InboxService } from '../inbox/inbox.service';
import { formatTime } from '../shared/util';

@Component({
  selector: 'ramp-inbox-page',
  imports: [RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div class="page-head">
      <h1>Inbox</h1>
      <p class="muted" aria-live="polite">{{ summary() }}</p>
    </div>
    @if (inbox.error() && inbox.status() === 'offline') {
      <p class="error" role="status">{{ inbox.error() }}</p>
    }
    @if (inbox.items().length === 0) {
      <p class="empty">
        @if (inbox.status() === 'online') {
          No forms are waiting for you.
          <a routerLink="/start" data-testid="empty-inbox-start">Start a process</a> to get one.
        } @else {
          No forms to show yet.
        }
      </p>
    } @else {
      <ul class="cards" aria-label="Pending forms">
        @for (item of inbox.items(); track item.id) {
          <li
            class="card"
            data-testid="inbox-item"
            [class.card-returned]="item.returnReason"
            [attr.data-form-id]="item.id"
            [attr.data-form-name]="item.formName"
            [attr.data-returned]="item.returnReason ? true : null"
          >
            <div class="card-row">
              <a class="card-title" [routerLink]="['/forms', item.id]">{{ item.title }}</a>
              @if (item.returnReason) {
                <span class="tag tag-returned" data-testid="returned">Returned</span>
              }
            </div>
            @if (item.returnReason) {
              <p class="return-reason" data-testid="return-reason" [attr.title]="item.returnReason">
                The process could not use your answer:
                @for (s of parts(short(item.returnReason)); track $index) {
                  @if (s.code) {<code>{{ s.text }}</code>} @else {<span>{{ s.text }}</span>}
                }
              </p>
            }
            <p class="card-sub">
              <span data-testid="process-name">{{ item.processName || item.processDefinitionKey || 'A process' }}</span>
              @if (item.context) {
                · <span data-testid="form-context">{{ item.context }}</span>
              }
            </p>
            <dl class="facts">
              <div><dt>Started by</dt><dd>{{ item.businessKey }}</dd></div>
              <div><dt>Since</dt><dd>{{ time(item.createTime) }}</dd></div>
              @if (item.returnReason && item.returnTime !== null) {
                <div><dt>Returned</dt><dd>{{ time(item.returnTime) }}</dd></div>
              }
            </dl>
            @if (item.hasDraft && !item.returnReason) {
              <span class="tag">Draft saved</span>
            }
          </li>
        }
      </ul>
    }
  `,
})
export class InboxPage {
  readonly inbox = inject(InboxService);
  readonly time = formatTime;
  readonly short = shortReason;
  readonly parts = segments;

  readonly summary = computed(() => {
    const n = this.inbox.count();
    const forms = n === 1 ? '1 form waits' : `${n} forms wait`;
    switch (this.inbox.status()) {
      case 'online':
        return `${forms} for you. The list updates by itself.`;
      case 'connecting':
        return 'Connecting…';
      case 'unauthenticated':
        // The banner at the top says so, with the link to sign in again.
        return `${forms} as last seen.`;
      default:
        return `Offline: reconnecting. ${forms} as last seen.`;
    }
  });
}
