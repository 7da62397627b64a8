import {
  ChangeDetectionStrategy,
  Component,
  DestroyRef,
  type ElementRef,
  computed,
  effect,
  inject,
  input,
  signal,
  untracked,
  viewChild,
} from '@angular/core';
import { Title } from '@angular/platform-browser';
import { Router, RouterLink } from '@angular/router';
import { Form } from '@bpmn-io/form-js-viewer';
import { create, type JsonObject } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';

import { DeliverySchema, DeliveryState, FormTaskKind, FormTaskStatus, type FormTask } from '../../gen/ramp/v1/form_pb';
import { fieldViolations } from '../api/bad-request';
import { describeError, errorCode } from '../api/errors';
import { RampApi } from '../api/ramp-api.service';
import { claimRefusal } from '../form/claim';
import { KeyValueEditor } from '../form/kv-editor.component';
import { submittedAnswers } from '../form/answers';
import { deliveryNote, returnedSegments } from '../form/outcome';
import { type ShownViolation, showViolations, toJsonObject } from '../form/schema';
import { groupTaskLabel } from '../inbox/inbox-state';
import { InboxService } from '../inbox/inbox.service';
import { formatTime, sleep, timestampMs, uuid } from '../shared/util';

const DELIVERY_TEXT: Record<DeliveryState, string> = {
  [DeliveryState.UNSPECIFIED]: 'not submitted',
  [DeliveryState.PENDING]: 'pending',
  [DeliveryState.DELIVERED]: 'delivered',
  [DeliveryState.FAILED]: 'failed',
  [DeliveryState.UNDELIVERABLE]: 'undeliverable',
  [DeliveryState.REFUSED]: 'refused',
};

const STATUS_TEXT: Record<FormTaskStatus, string> = {
  [FormTaskStatus.UNSPECIFIED]: 'unknown',
  [FormTaskStatus.PENDING]: 'pending',
  [FormTaskStatus.COMPLETED]: 'completed',
  [FormTaskStatus.WITHDRAWN]: 'withdrawn',
};

/** How long the page follows the delivery after a submit, and how long it then
 * shows the outcome before going back to the inbox. */
const FOLLOW_MS = 10000;
const LINGER_MS = 3000;

/** What the page says about a form that left the inbox while open. */
interface Gone {
  heading: string;
  text: string;
  /** The status to show instead of the loaded one. */
  status: string;
}

const reassigned = (): Gone => ({
  heading: 'This form was given to someone else',
  status: 'reassigned',
  text: 'It was reassigned and is no longer yours to fill in. Nothing you entered here was sent.',
});

const claimedByAnother = (): Gone => ({
  heading: 'Someone else claimed this task',
  status: 'claimed',
  text: 'Another candidate claimed it first: it is theirs to fill in now. Nothing you entered here was sent.',
});

const givenBack = (): Gone => ({
  heading: 'You gave this task back',
  status: 'given back',
  text: 'It went back to its candidates, and you are not one of them: it is no longer in your inbox.',
});

interface FormJsField {
  id: string;
  valuePath?: (string | number)[];
  indexes?: Record<string, number>;
}

@Component({
  selector: 'ramp-form-page',
  imports: [RouterLink, KeyValueEditor],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <p class="back"><a routerLink="/inbox">← Back to the inbox</a></p>

    @if (loading()) {
      <p role="status">Loading the form…</p>
    }
    @if (loadError(); as e) {
      <p class="error" role="alert">{{ e }}</p>
    }

    @if (task(); as t) {
      <h1 data-testid="form-title">{{ t.summary?.title || t.summary?.taskName || t.summary?.formName }}</h1>
      <p class="card-sub">
        <span data-testid="process-name">{{ processName() }}</span>
        @if (t.summary?.context) {
          · <span data-testid="form-context">{{ t.summary?.context }}</span>
        }
      </p>
      <dl class="facts">
        @if (t.summary?.businessKey) {
          <div><dt>Started by</dt><dd>{{ t.summary?.businessKey }}</dd></div>
        }
        <div><dt>Status</dt><dd data-testid="form-status">{{ gone()?.status ?? statusText() }}</dd></div>
        @if (dueAt(); as due) {
          <div data-testid="due"><dt>Due</dt><dd>{{ due }}</dd></div>
        }
        @if (userTask() && t.summary?.priority) {
          <div data-testid="priority"><dt>Priority</dt><dd>{{ t.summary?.priority }}</dd></div>
        }
      </dl>
      @if (pending() && !gone() && userTask()) {
        <div class="card-actions claim-bar">
          @if (unclaimed()) {
            <span class="tag tag-group" data-testid="group-task">{{ groupLabel() }}</span>
            <span>Claim it to fill it in; the other candidates then no longer see it.</span>
            <button type="button" class="primary" data-testid="claim" [disabled]="busy()" (click)="claim()">
              {{ claiming() ? 'Claiming…' : 'Claim' }}
            </button>
          } @else if (!submitted()) {
            <button type="button" data-testid="unclaim" [disabled]="busy()" (click)="unclaim()">
              {{ claiming() ? 'Giving back…' : 'Give back' }}
            </button>
          }
        </div>
      }

      @if (submitted() || !pending()) {
        <section class="panel" role="status" aria-live="polite" aria-labelledby="outcome-h">
          <h2 id="outcome-h">
            @if (submitted()) {
              Submitted
            } @else {
              This form is {{ statusText() }}
            }
          </h2>
          @if (t.withdrawalReason) {
            <p>Reason: {{ t.withdrawalReason }}</p>
          }
          @if (submitted() || t.summary?.status === completed) {
            <p>
              Delivery to the process:
              <strong data-testid="delivery-state" [class]="'delivery delivery-' + deliveryText()">{{
                deliveryText()
              }}</strong>
            </p>
            @if (deliveryNote(); as note) {
              <p data-testid="delivery-note" [class]="'delivery-note delivery-note-' + deliveryText()">
                {{ note }}
              </p>
            }
          }
          @if (answers().length) {
            <h3 id="answers-h">Your answers{{ submittedAt() ? ', as submitted ' + submittedAt() : '' }}</h3>
            <dl class="answers" data-testid="answers" aria-labelledby="answers-h">
              @for (a of answers(); track a.key) {
                <div data-testid="answer" [attr.data-key]="a.key">
                  <dt>{{ a.label }}</dt>
                  <dd>{{ a.value }}</dd>
                </div>
              }
            </dl>
          }
          @if (returning()) {
            <p class="muted">Going back to the inbox…</p>
          }
          <a routerLink="/inbox">Back to the inbox</a>
        </section>
      } @else {
        @if (returnReason(); as reason) {
          <section class="returned" role="alert" aria-labelledby="returned-h" data-testid="returned-form">
            <h2 id="returned-h">Your answer came back</h2>
            <p data-testid="form-return-reason">
              @for (s of returnedSegments(reason); track $index) {
                @if (s.code) {<code>{{ s.text }}</code>} @else {<span>{{ s.text }}</span>}
              }
            </p>
            @if (t.summary?.returnTime) {
              <p class="muted">Returned {{ returnedAt() }}. Your answer is filled in below.</p>
            }
          </section>
        }
        @if (gone(); as g) {
          <section class="returned" role="alert" aria-labelledby="gone-h" data-testid="form-gone">
            <h2 id="gone-h">{{ g.heading }}</h2>
            <p data-testid="form-gone-reason">{{ g.text }}</p>
            <p><a routerLink="/inbox">Back to the inbox</a></p>
          </section>
        }
        <div class="form-layout">
          <div class="form-main">
            @if (t.schema) {
              <div #formHost class="formjs-host" data-testid="form-js"></div>
            } @else {
              <ramp-kv-editor
                [initial]="initialData()"
                [invalidKeys]="violationKeys()"
                [disabled]="busy() || locked()"
              />
            }
          </div>
          @if (violations().length) {
            <aside
              #violationsBox
              class="violations"
              data-testid="violations"
              tabindex="-1"
              aria-labelledby="violations-h"
            >
              <h2 id="violations-h">Please check these answers</h2>
              <ul>
                @for (v of violations(); track $index) {
                  <li data-testid="violation" [attr.data-field]="v.key">
                    <strong>{{ v.label }}</strong>{{ v.label !== v.key ? ' (' + v.key + ')' : '' }}:
                    {{ v.description }}
                  </li>
                }
              </ul>
            </aside>
          }
        </div>

        <div class="actions">
          <button type="button" data-testid="save-draft" [disabled]="busy() || locked()" (click)="saveDraft()">
            {{ saving() ? 'Saving…' : 'Save draft' }}
          </button>
          <button
            type="button"
            class="primary"
            data-testid="submit-form"
            [disabled]="busy() || locked()"
            (click)="submit()"
          >
            {{ submitting() ? 'Submitting…' : 'Submit' }}
          </button>
        </div>
        @if (message(); as m) {
          <p class="ok" role="status">{{ m }}</p>
        }
        @if (actionError(); as e) {
          <p class="error" role="alert">{{ e }}</p>
        }
      }
    }
  `,
})
export class FormPage {
  private readonly api = inject(RampApi);
  private readonly router = inject(Router);
  private readonly inbox = inject(InboxService);
  private readonly title = inject(Title);
  private alive = true;
  /** Whether the inbox stream has listed this form while the page was open. */
  private seenInInbox = false;
  /** Whether this page gave the user task back (it may then leave this user's list). */
  private gaveBack = false;

  /** The form task id, from the route. */
  readonly id = input.required<string>();

  readonly task = signal<FormTask | null>(null);
  readonly loading = signal(false);
  readonly loadError = signal<string | null>(null);
  readonly saving = signal(false);
  readonly submitting = signal(false);
  readonly claiming = signal(false);
  readonly busy = computed(() => this.saving() || this.submitting() || this.claiming());
  readonly message = signal<string | null>(null);
  readonly actionError = signal<string | null>(null);
  readonly violations = signal<ShownViolation[]>([]);
  readonly violationKeys = computed(() => this.violations().map((v) => v.key));
  readonly submitted = signal(false);
  readonly returning = signal(false);
  readonly completed = FormTaskStatus.COMPLETED;
  /** Set when the form left the inbox while open here, not by this page's submit:
   * withdrawn, reassigned or answered elsewhere. The form stays shown, disabled. */
  readonly gone = signal<Gone | null>(null);
  /** The engine's own user task, not a send-task form. */
  readonly userTask = computed(() => this.task()?.summary?.kind === FormTaskKind.USER_TASK);
  /** A user task nobody has claimed: shown, but filled only once claimed. */
  readonly unclaimed = computed(() => this.userTask() && !this.task()?.summary?.assignee);
  /** The fields and buttons are off: the form left the inbox, or is still to be claimed. */
  readonly locked = computed(() => !!this.gone() || this.unclaimed());
  readonly groupLabel = computed(() => groupTaskLabel({ candidateGroups: this.task()?.summary?.candidateGroups ?? [] }));
  readonly dueAt = computed(() => formatTime(timestampMs(this.task()?.summary?.dueTime)));

  /** The answers as submitted (a completed form), with the schema's labels. */
  readonly answers = computed(() => {
    const t = this.task();
    return t?.summary?.status === FormTaskStatus.COMPLETED ? submittedAnswers(t.schema, t.submittedData) : [];
  });
  readonly submittedAt = computed(() => {
    const ms = timestampMs(this.task()?.submitTime);
    return ms === null ? '' : formatTime(ms);
  });
  readonly processName = computed(() => {
    const s = this.task()?.summary;
    return s?.processName || s?.processDefinitionKey || 'A process';
  });
  readonly pending = computed(() => this.task()?.summary?.status === FormTaskStatus.PENDING);
  readonly statusText = computed(() => STATUS_TEXT[this.task()?.summary?.status ?? FormTaskStatus.UNSPECIFIED]);
  readonly deliveryText = computed(
    () => DELIVERY_TEXT[this.task()?.delivery?.state ?? DeliveryState.UNSPECIFIED] ?? 'unknown',
  );
  /** The author's words for a delivery that did not go through (yet). */
  readonly deliveryNote = computed(() => deliveryNote(this.task()?.delivery));
  /** Why the process could not use the last answer, for a form that came back. */
  readonly returnReason = computed(() => (this.pending() ? this.task()?.summary?.returnReason || null : null));
  readonly returnedAt = computed(() => formatTime(timestampMs(this.task()?.summary?.returnTime)));
  readonly returnedSegments = returnedSegments;
  /** What the form starts with: the prefill, overridden by the saved draft. */
  readonly initialData = computed<JsonObject>(() => ({
    ...(this.task()?.prefill ?? {}),
    ...(this.task()?.draft ?? {}),
  }));

  private readonly formHost = viewChild<ElementRef<HTMLElement>>('formHost');
  private readonly violationsBox = viewChild<ElementRef<HTMLElement>>('violationsBox');
  private readonly kvEditor = viewChild(KeyValueEditor);

  private form: Form | null = null;
  private formHostEl: HTMLElement | null = null;
  /** The form-js data as of its last change (for drafts). */
  private formData: JsonObject = {};

  constructor() {
    effect(() => {
      const id = this.id();
      untracked(() => void this.load(id));
    });
    // The inbox stream (which the app holds anyway) says at once when the form
    // leaves this user's pending forms; the page then asks why, once.
    effect(() => {
      const id = this.id();
      const items = this.inbox.items();
      const online = this.inbox.status() === 'online';
      untracked(() => {
        if (items.some((x) => x.id === id)) {
          this.seenInInbox = true;
          return;
        }
        if (online && this.seenInInbox && this.pending() && !this.busy() && !this.submitted() && !this.gone()) {
          this.seenInInbox = false;
          void this.heardGone(id);
        }
      });
    });
    // The page's title names the form and its process, not "Form · ramp".
    effect(() => {
      const s = this.task()?.summary;
      if (s) {
        const name = s.title || s.taskName || s.formName;
        this.title.setTitle(`${name} · ${s.processName || s.processDefinitionKey || 'process'} · ramp`);
      }
    });
    // form-js takes no input while the form is locked.
    effect(() => {
      const locked = this.locked();
      this.task();
      untracked(() => this.form?.setProperty('disabled', locked));
    });
    // Renders the schema with form-js once its container exists.
    effect(() => {
      const host = this.formHost()?.nativeElement ?? null;
      const task = this.task();
      untracked(() => this.attachForm(host, task));
    });
    inject(DestroyRef).onDestroy(() => {
      this.alive = false;
      this.destroyForm();
    });
  }

  private async load(id: string): Promise<void> {
    this.destroyForm();
    this.task.set(null);
    this.loading.set(true);
    this.loadError.set(null);
    this.violations.set([]);
    this.message.set(null);
    this.actionError.set(null);
    this.submitted.set(false);
    this.gone.set(null);
    this.seenInInbox = false;
    this.gaveBack = false;
    try {
      const res = await this.api.forms.getFormTask({ id });
      if (this.alive && id === this.id()) {
        this.task.set(res.formTask ?? null);
      }
    } catch (e) {
      this.loadError.set(describeError(e));
    } finally {
      this.loading.set(false);
    }
  }

  /** The form left the inbox while open here: finds out why and says so. */
  private async heardGone(id: string): Promise<void> {
    let gone: Gone;
    try {
      const res = await this.api.forms.getFormTask({ id });
      const t = res.formTask;
      const status = t?.summary?.status;
      if (status === FormTaskStatus.WITHDRAWN) {
        gone = {
          heading: 'This form was withdrawn',
          status: 'withdrawn',
          text: `The process no longer needs it${t?.withdrawalReason ? `: ${t.withdrawalReason}` : ''}. Nothing you entered here was sent.`,
        };
      } else if (status === FormTaskStatus.COMPLETED) {
        gone = {
          heading: 'This form was submitted',
          status: 'completed',
          text: 'It was submitted elsewhere (another tab or window).',
        };
      } else if (this.unclaimed() && status === FormTaskStatus.PENDING && t?.summary?.assignee) {
        // Claimed while shown here, and still this user's to see: so theirs (claimed
        // in another tab). A task another candidate claimed is no longer shown to
        // this one (NOT_FOUND, below).
        this.task.set(t);
        return;
      } else if (status === FormTaskStatus.PENDING && t?.summary?.assignee && t.summary.assignee !== this.task()?.summary?.assignee) {
        gone = reassigned();
      } else {
        return; // still pending for this user: nothing to say
      }
    } catch (e) {
      const code = ConnectError.from(e).code;
      if (code !== Code.PermissionDenied && code !== Code.NotFound) {
        return;
      }
      gone = !this.unclaimed() ? reassigned() : this.gaveBack ? givenBack() : claimedByAnother();
    }
    if (!this.alive || id !== this.id() || this.submitted()) {
      return;
    }
    this.gone.set(gone);
    this.message.set(null);
    this.form?.setProperty('disabled', true);
  }

  private destroyForm(): void {
    this.form?.destroy();
    this.form = null;
    this.formHostEl = null;
  }

  private attachForm(host: HTMLElement | null, task: FormTask | null): void {
    if (!host || !task?.schema) {
      if (!host) {
        this.destroyForm();
      }
      return;
    }
    if (this.form && this.formHostEl === host) {
      return;
    }
    this.destroyForm();
    // debounce: false makes every keystroke reach the form's data at once, so a Save
    // or Submit right after typing (even in a tab without focus) sees it.
    const form = new Form({ container: host, debounce: false } as ConstructorParameters<typeof Form>[0]);
    this.form = form;
    this.formHostEl = host;
    this.formData = { ...this.initialData() };
    form.on('changed', (e: { data?: unknown }) => {
      if (e?.data) {
        this.formData = toJsonObject(e.data);
      }
    });
    form.on('submit', (e: { data: unknown; errors: Record<string, unknown> }) => {
      void this.onFormJsSubmit(e);
    });
    form
      .importSchema(task.schema as never, structuredClone(this.initialData()))
      .then(() => form.setProperty('disabled', this.locked()))
      .catch((err: unknown) => {
        this.actionError.set(`This form could not be shown: ${String(err)}`);
      });
  }

  /** Claims this group task for the caller: the form opens for them. */
  async claim(): Promise<void> {
    const task = this.task();
    if (!task || this.busy() || this.gone()) {
      return;
    }
    const id = task.summary?.id ?? this.id();
    this.claiming.set(true);
    this.message.set(null);
    this.actionError.set(null);
    try {
      const res = await this.api.forms.claimFormTask({ id });
      if (this.alive && id === this.id() && res.formTask) {
        this.task.set(res.formTask);
        this.message.set('You claimed this task: it is yours to fill in.');
      }
    } catch (e) {
      const title = task.summary?.title || task.summary?.formName || 'This task';
      this.actionError.set(claimRefusal(title, errorCode(e)) ?? describeError(e));
    } finally {
      this.claiming.set(false);
    }
  }

  /** Gives this claimed user task back to its candidates. */
  async unclaim(): Promise<void> {
    const task = this.task();
    if (!task || this.busy() || this.gone()) {
      return;
    }
    const id = task.summary?.id ?? this.id();
    this.claiming.set(true);
    this.message.set(null);
    this.actionError.set(null);
    try {
      const res = await this.api.forms.unclaimFormTask({ id });
      if (this.alive && id === this.id() && res.formTask) {
        // The draft was dropped with the claim: the form starts again from its prefill.
        this.task.set({ ...task, summary: res.formTask, draft: undefined });
        this.destroyForm();
        this.gaveBack = true;
        this.message.set('You gave this task back to its candidates.');
      }
    } catch (e) {
      this.actionError.set(describeError(e));
    } finally {
      this.claiming.set(false);
    }
  }

  async saveDraft(): Promise<void> {
    const task = this.task();
    if (!task || this.busy() || this.gone()) {
      return;
    }
    let data: JsonObject;
    if (task.schema) {
      data = toJsonObject(this.formData);
    } else {
      const v = this.kvEditor()?.value();
      if (!v) {
        return;
      }
      data = v.data;
    }
    this.saving.set(true);
    this.message.set(null);
    this.actionError.set(null);
    try {
      await this.api.forms.saveDraft({ id: task.summary?.id ?? this.id(), data });
      this.message.set(`Draft saved at ${formatTime(Date.now())}.`);
    } catch (e) {
      this.handleError(e);
    } finally {
      this.saving.set(false);
    }
  }

  /** The Submit button: form-js validates first (its 'submit' event sends). */
  submit(): void {
    const task = this.task();
    if (!task || this.busy() || this.gone()) {
      return;
    }
    if (task.schema) {
      if (this.form) {
        this.form.submit();
      }
      return;
    }
    const v = this.kvEditor()?.value();
    if (!v) {
      return;
    }
    if (v.problems.length) {
      this.violations.set([]);
      this.actionError.set(v.problems.join(' '));
      return;
    }
    void this.send(v.data);
  }

  private async onFormJsSubmit(e: { data: unknown; errors: Record<string, unknown> }): Promise<void> {
    if (this.busy()) {
      return;
    }
    if (e.errors && Object.keys(e.errors).length > 0) {
      this.message.set(null);
      this.actionError.set('Some answers need attention: they are marked in the form.');
      this.focusFirstInvalid();
      return;
    }
    await this.send(toJsonObject(e.data));
  }

  /**
   * After a refused submit, focus goes to the first field form-js marked invalid
   * (not left on Submit), once form-js has rendered its errors.
   */
  private focusFirstInvalid(tries = 20): void {
    setTimeout(() => {
      const el = this.formHostEl?.querySelector<HTMLElement>('[aria-invalid="true"]');
      if (el) {
        el.focus();
        el.scrollIntoView({ block: 'center' });
      } else if (tries > 0 && this.alive) {
        this.focusFirstInvalid(tries - 1);
      }
    }, 25);
  }

  private async send(data: JsonObject): Promise<void> {
    const task = this.task();
    if (!task) {
      return;
    }
    this.submitting.set(true);
    this.message.set(null);
    this.actionError.set(null);
    try {
      // A fresh request id per attempt: a retry of the same click could reuse it,
      // a new click is a new submission.
      const res = await this.api.forms.submitForm({ id: task.summary?.id ?? this.id(), data, requestId: uuid() });
      this.violations.set([]);
      this.destroyForm();
      this.task.update((t) =>
        t
          ? ({
              ...t,
              summary: t.summary
                ? { ...t.summary, status: FormTaskStatus.COMPLETED, returnReason: '', returnTime: undefined }
                : t.summary,
              delivery: create(DeliverySchema, {
                state: res.submission?.deliveryState ?? DeliveryState.PENDING,
              }),
            } as FormTask)
          : t,
      );
      this.submitted.set(true);
      void this.followDelivery(task.summary?.id ?? this.id());
    } catch (e) {
      this.handleError(e);
    } finally {
      this.submitting.set(false);
    }
  }

  /**
   * Shows the delivery state as it changes for a while, then goes back to the inbox.
   * When the process refuses the answer, the form comes back: the page shows it
   * again, with the reason and the answer filled in, and stays.
   */
  private async followDelivery(id: string): Promise<void> {
    const until = Date.now() + FOLLOW_MS;
    while (this.alive && Date.now() < until) {
      const state = this.task()?.delivery?.state;
      if (state !== undefined && state !== DeliveryState.PENDING && state !== DeliveryState.UNSPECIFIED) {
        break;
      }
      await sleep(1000);
      try {
        const res = await this.api.forms.getFormTask({ id });
        if (this.alive && res.formTask && id === this.id()) {
          this.task.set(res.formTask);
        }
      } catch {
        // keep showing the last known state
      }
    }
    if (!this.alive || id !== this.id()) {
      return;
    }
    if (this.pending()) {
      // Returned to be corrected (or otherwise pending again): fill it in anew.
      this.submitted.set(false);
      return;
    }
    this.returning.set(true);
    await sleep(LINGER_MS);
    if (this.alive && id === this.id()) {
      void this.router.navigateByUrl('/inbox');
    }
  }

  private handleError(e: unknown): void {
    const err = ConnectError.from(e);
    if (err.code === Code.InvalidArgument) {
      const v = fieldViolations(err);
      if (v.length) {
        const shown = showViolations(this.task()?.schema, v);
        this.violations.set(shown);
        this.actionError.set(
          shown.length === 1 ? 'One answer was not accepted.' : `${shown.length} answers were not accepted.`,
        );
        this.markInForm(shown);
        setTimeout(() => this.violationsBox()?.nativeElement.focus());
        return;
      }
    }
    this.violations.set([]);
    if (err.code === Code.FailedPrecondition) {
      this.actionError.set(`This form can no longer be submitted: ${err.rawMessage}`);
      return;
    }
    this.actionError.set(describeError(err));
  }

  /** Also shows each violation under its field in form-js, where it has one. */
  private markInForm(shown: ShownViolation[]): void {
    const form = this.form;
    if (!form) {
      return;
    }
    try {
      const registry = form.get<{ getAllKeyed(): FormJsField[] }>('formFieldInstanceRegistry');
      const fields = registry.getAllKeyed();
      const errors: Record<string, string[]> = { ...(form._getState().errors as Record<string, string[]>) };
      for (const v of shown) {
        const field = fields.find(
          (f) => (f.valuePath ?? []).join('.') === v.key && Object.keys(f.indexes ?? {}).length === 0,
        );
        if (field) {
          errors[field.id] = [...(errors[field.id] ?? []), v.description];
        }
      }
      form._setState({ errors });
    } catch {
      // form-js internals differ: the list next to the form still names each field
    }
  }
}
