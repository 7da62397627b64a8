import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { Router, RouterLink } from '@angular/router';

import { describeError, errorCode } from '../api/errors';
import { RampApi } from '../api/ramp-api.service';
import { claimRefusal } from '../form/claim';
import { segments, shortReason } from '../form/outcome';
import { type InboxItem, groupTaskLabel, isGroupTask } from '../inbox/inbox-state';
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
    <div aria-live="polite">
      @if (notice(); as n) {
        <p [class]="n.problem ? 'error' : 'notice'" data-testid="claim-notice">{{ n.text }}</p>
      }
    </div>
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
            [attr.data-process-instance-id]="item.processInstanceId"
            [attr.data-kind]="item.userTask ? 'user_task' : 'send_task'"
            [attr.data-group-task]="groupTask(item) ? true : null"
          >
            <div class="card-row">
              <a class="card-title" [routerLink]="['/forms', item.id]">{{ item.title }}</a>
              @if (item.returnReason) {
                <span class="tag tag-returned" data-testid="returned">Returned</span>
              }
              @if (groupTask(item)) {
                <span class="tag tag-group" data-testid="group-task">{{ groupLabel(item) }}</span>
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
              @if (item.businessKey) {
                <div><dt>Started by</dt><dd>{{ item.businessKey }}</dd></div>
              }
              <div><dt>Since</dt><dd>{{ time(item.createTime) }}</dd></div>
              @if (item.dueTime !== null) {
                <div data-testid="due"><dt>Due</dt><dd>{{ time(item.dueTime) }}</dd></div>
              }
              @if (item.userTask && item.priority) {
                <div data-testid="priority"><dt>Priority</dt><dd>{{ item.priority }}</dd></div>
              }
              @if (item.returnReason && item.returnTime !== null) {
                <div><dt>Returned</dt><dd>{{ time(item.returnTime) }}</dd></div>
              }
            </dl>
            @if (item.hasDraft && !item.returnReason) {
              <span class="tag">Draft saved</span>
            }
            @if (groupTask(item)) {
              <div class="card-actions">
                <button
                  type="button"
                  class="primary"
                  data-testid="claim"
                  [disabled]="busy() === item.id"
                  [attr.aria-label]="'Claim ' + item.title"
                  (click)="claim(item)"
                >
                  {{ busy() === item.id ? 'Claiming…' : 'Claim' }}
                </button>
              </div>
            } @else if (item.userTask) {
              <div class="card-actions">
                <button
                  type="button"
                  data-testid="unclaim"
                  [disabled]="busy() === item.id"
                  [attr.aria-label]="'Give back ' + item.title"
                  (click)="unclaim(item)"
                >
                  {{ busy() === item.id ? 'Giving back…' : 'Give back' }}
                </button>
              </div>
            }
          </li>
        }
      </ul>
    }
  `,
})
export class InboxPage {
  readonly inbox = inject(InboxService);
  private readonly api = inject(RampApi);
  private readonly router = inject(Router);
  readonly time = formatTime;
  readonly short = shortReason;
  readonly parts = segments;
  readonly groupTask = isGroupTask;
  readonly groupLabel = groupTaskLabel;

  /** The task a claim or unclaim is under way for. */
  readonly busy = signal<string | null>(null);
  /** What the last claim or unclaim came to, when it is worth saying. */
  readonly notice = signal<{ text: string; problem: boolean } | null>(null);

  /** Claims a group task for the caller and opens its form. */
  async claim(item: InboxItem): Promise<void> {
    if (this.busy()) {
      return;
    }
    this.busy.set(item.id);
    this.notice.set(null);
    try {
      await this.api.forms.claimFormTask({ id: item.id });
      await this.router.navigate(['/forms', item.id]);
    } catch (e) {
      // The stream takes the card away when someone else holds the task now.
      this.notice.set({ text: claimRefusal(item.title, errorCode(e)) ?? describeError(e), problem: true });
    } finally {
      this.busy.set(null);
    }
  }

  /** Gives a claimed user task back to its candidates. */
  async unclaim(item: InboxItem): Promise<void> {
    if (this.busy()) {
      return;
    }
    this.busy.set(item.id);
    this.notice.set(null);
    try {
      await this.api.forms.unclaimFormTask({ id: item.id });
      this.notice.set({ text: `You gave “${item.title}” back to its candidates.`, problem: false });
    } catch (e) {
      this.notice.set({ text: describeError(e), problem: true });
    } finally {
      this.busy.set(null);
    }
  }

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
