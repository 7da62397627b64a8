import { ChangeDetectionStrategy, Component, effect, inject, untracked } from '@angular/core';
import { Router, RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';

import { SessionService } from './auth/session.service';
import { InboxService } from './inbox/inbox.service';

@Component({
  selector: 'ramp-root',
  imports: [RouterOutlet, RouterLink, RouterLinkActive],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <a class="skip-link" href="#main" (click)="skip($event)">Skip to content</a>
    <header class="app-header">
      <a class="brand" routerLink="/inbox" aria-label="ramp home">ramp</a>
      @if (session.signedIn()) {
        <nav class="app-nav" aria-label="Main">
          <a routerLink="/inbox" routerLinkActive="active" ariaCurrentWhenActive="page">
            Inbox
            <span class="badge" data-testid="inbox-count">{{ inbox.count() }}</span>
            <span class="visually-hidden"> pending forms</span>
          </a>
          <a routerLink="/start" routerLinkActive="active" ariaCurrentWhenActive="page">Start</a>
          <a routerLink="/done" routerLinkActive="active" ariaCurrentWhenActive="page">Completed</a>
          <a routerLink="/processes" routerLinkActive="active" ariaCurrentWhenActive="page">Processes</a>
        </nav>
        <div class="conn" role="status" aria-live="polite" [attr.data-inbox-leader]="inbox.leader()" [attr.data-inbox-status]="inbox.status()">
          @switch (inbox.status()) {
            @case ('offline') {
              <span class="offline" data-testid="offline" [attr.title]="inbox.error()">
                Offline, reconnecting…
              </span>
            }
            @case ('unauthenticated') {
              <!-- Said once, by the banner below, when the session is known to be over. -->
              @if (!session.expired()) {
                <span class="offline" data-testid="offline" [attr.title]="inbox.error()">
                  Offline: sign in again
                </span>
              }
            }
            @case ('connecting') {
              <span class="connecting">Connecting…</span>
            }
          }
        </div>
        <div class="user">
          <span class="email">{{ session.email() ?? 'no email in token' }}</span>
          <button type="button" class="link" (click)="signOut()">Sign out</button>
        </div>
      }
    </header>
    @if (session.expired()) {
      <div class="banner" role="alert" data-testid="signed-out">
        Your sign-in has expired or was refused.
        <a routerLink="/signin" [queryParams]="{ returnUrl: router.url }">Sign in again</a>
      </div>
    }
    <main id="main" class="app-main" tabindex="-1">
      <router-outlet />
    </main>
  `,
})
export class App {
  // Signed out in another tab: this one leaves the signed-in pages too.
  private readonly followSignOut = effect(() => {
    if (!this.session.signedIn() && !untracked(() => this.router.url).startsWith('/signin')) {
      untracked(() => void this.router.navigateByUrl('/signin'));
    }
  });
  readonly session = inject(SessionService);
  readonly inbox = inject(InboxService);
  readonly router = inject(Router);

  skip(ev: Event): void {
    // href="#main" would resolve against <base href="/">: focus the content instead.
    ev.preventDefault();
    document.getElementById('main')?.focus();
  }

  signOut(): void {
    this.session.signOut();
    void this.router.navigateByUrl('/signin');
  }
}
