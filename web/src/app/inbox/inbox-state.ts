import type { FormTaskSummary } from '../../gen/ramp/v1/form_pb';
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
  createTime: number | null;
  updateTime: number | null;
  hasDraft: boolean;
  /** Why the process could not use the last answer, when the form came back to be
   * corrected; empty for a form never returned. */
  returnReason: string;
  returnTime: number | null;
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
    createTime: timestampMs(s.createTime),
    updateTime: timestampMs(s.updateTime),
    hasDraft: s.hasDraft,
    returnReason: s.returnReason,
    returnTime: timestampMs(s.returnTime),
  };
}

function byAge(a: InboxItem, b: InboxItem): number {
  return (a.createTime ?? 0) - (b.createTime ?? 0) || a.id.localeCompare(b.id);
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
