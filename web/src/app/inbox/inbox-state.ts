import { FormTaskKind, type FormTaskSummary } from '../../gen/ramp/v1/form_pb';
import type { PendingFormsResponse } from '../../gen/ramp/v1/form_service_pb';
import { timestampMs } from '../shared/util';

/** A pending form as the inbox shows it: plain data, so it can cross a
 * BroadcastChannel to the other tabs. */
export interface InboxItem {
  id: string;
  formName: string;
  title: string;
  businessKey: string;
  assignee: string;
  processDefinitionKey: string;
  /** The send task's name in the model ("Enter company details"); may be empty. */
  taskName: string;
  /** The process's name in the model; may be empty. */
  processName: string;
  /** A short line saying what the form is about (from the model's `ramp.context`). */
  context: string;
  createTime: number | null;
  updateTime: number | null;
  hasDraft: boolean;
  /** Why the process could not use the last answer, when the form came back to be
   * corrected; empty for a form never returned. */
  returnReason: string;
  returnTime: number | null;
  /** The engine process instance that holds the task. */
  processInstanceId: string;
  /** The engine's own user task (true), or a send-task form. */
  userTask: boolean;
  /** A user task's candidate groups and users, as the engine has them now. */
  candidateGroups: string[];
  candidateUsers: string[];
  /** A user task's due date, when it has one. */
  dueTime: number | null;
  /** A user task's priority (the engine's default is 50); 0 for send-task forms. */
  priority: number;
}

/** A user task nobody has claimed yet: its candidates see it and one claims it. */
export function isGroupTask(item: Pick<InboxItem, 'userTask' | 'assignee'>): boolean {
  return item.userTask && item.assignee === '';
}

/** The mark of a group task: "Group task · reviewers". */
export function groupTaskLabel(item: Pick<InboxItem, 'candidateGroups'>): string {
  return item.candidateGroups.length ? `Group task · ${item.candidateGroups.join(', ')}` : 'Group task';
}

/** Where the shared stream stands. */
export type InboxStatus = 'connecting' | 'online' | 'offline' | 'unauthenticated';

export function toItem(s: FormTaskSummary): InboxItem {
  return {
    id: s.id,
    formName: s.formName,
    title: s.title || s.formName,
    businessKey: s.businessKey,
    assignee: s.assignee,
    processDefinitionKey: s.processDefinitionKey,
    taskName: s.taskName,
    processName: s.processName,
    context: s.context,
    createTime: timestampMs(s.createTime),
    updateTime: timestampMs(s.updateTime),
    hasDraft: s.hasDraft,
    returnReason: s.returnReason,
    returnTime: timestampMs(s.returnTime),
    processInstanceId: s.processInstanceId,
    userTask: s.kind === FormTaskKind.USER_TASK,
    candidateGroups: [...s.candidateGroups],
    candidateUsers: [...s.candidateUsers],
    dueTime: timestampMs(s.dueTime),
    priority: s.priority,
  };
}

function byAge(a: InboxItem, b: InboxItem): number {
  return (a.createTime ?? 0) - (b.createTime ?? 0) || a.id.localeCompare(b.id);
}

/**
 * Collects the pages of a snapshot (PendingFormsResponse.Snapshot): a large inbox's
 * snapshot comes as several messages, every one but the last with `morePages` set
 * and no cursor. One per stream: pages of a stream that broke are dropped with it,
 * and the list and cursor stay as they were.
 */
export class SnapshotPages {
  private forms: FormTaskSummary[] = [];

  /**
   * The message to apply for `msg`: itself, unless it is a page of a snapshot
   * with more to come (then null: the pages are kept until the last), or the last
   * page of several (then one snapshot of all their forms, with the last's cursor).
   */
  take(msg: PendingFormsResponse): PendingFormsResponse | null {
    const ev = msg.event;
    if (ev.case !== 'snapshot') {
      return msg;
    }
    if (ev.value.morePages) {
      for (const form of ev.value.formTasks) {
        this.forms.push(form);
      }
      return null;
    }
    if (this.forms.length === 0) {
      return msg;
    }
    const formTasks = this.forms.concat(ev.value.formTasks);
    this.forms = [];
    return { ...msg, event: { case: 'snapshot', value: { ...ev.value, formTasks } } };
  }
}

/**
 * Applies one stream message to the list (oldest first): a snapshot replaces it,
 * added/updated put the form in (replacing one with its id), removed takes it out,
 * a heartbeat changes nothing. Returns the same array when nothing changed.
 */
export function applyEvent(items: InboxItem[], msg: PendingFormsResponse): InboxItem[] {
  const ev = msg.event;
  switch (ev.case) {
    case 'snapshot':
      return ev.value.formTasks.map(toItem).sort(byAge);
    case 'added':
    case 'updated': {
      const item = toItem(ev.value);
      const i = items.findIndex((x) => x.id === item.id);
      if (i >= 0) {
        const next = items.slice();
        next[i] = item;
        return next;
      }
      return [...items, item].sort(byAge);
    }
    case 'removed': {
      const id = ev.value.id;
      return items.some((x) => x.id === id) ? items.filter((x) => x.id !== id) : items;
    }
    default:
      return items;
  }
}
