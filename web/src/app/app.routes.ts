import type { Routes } from '@angular/router';

import { signedIn } from './auth/signed-in.guard';
import { DonePage } from './pages/done.page';
import { InboxPage } from './pages/inbox.page';
import { ProcessPage } from './pages/process.page';
import { ProcessesPage } from './pages/processes.page';
import { SigninPage } from './pages/signin.page';
import { StartPage } from './pages/start.page';

export const routes: Routes = [
  { path: '', pathMatch: 'full', redirectTo: 'inbox' },
  { path: 'signin', component: SigninPage, title: 'Sign in · ramp' },
  { path: 'processes', component: ProcessesPage, canActivate: [signedIn], title: 'Processes · ramp' },
  { path: 'processes/:id', component: ProcessPage, canActivate: [signedIn], title: 'Process · ramp' },
  { path: 'start', component: StartPage, canActivate: [signedIn], title: 'Start a process · ramp' },
  { path: 'done', component: DonePage, canActivate: [signedIn], title: 'Completed forms · ramp' },
  { path: 'inbox', component: InboxPage, canActivate: [signedIn], title: 'Inbox · ramp' },
  {
    path: 'forms/:id',
    // form-js is large: it loads only with the form page.
    loadComponent: () => import('./pages/form.page').then((m) => m.FormPage),
    canActivate: [signedIn],
    title: 'Form · ramp',
  },
  { path: '**', redirectTo: 'inbox' },
];
