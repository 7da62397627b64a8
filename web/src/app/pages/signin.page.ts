import { ChangeDetectionStrategy, Component, inject, input, signal } from '@angular/core';
import { Router } from '@angular/router';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';

import { FormService } from '../../gen/ramp/v1/form_service_pb';

import { SessionService } from '../auth/session.service';

/** Only app paths are followed after sign-in (never another origin). */
function safeReturnUrl(url: string | null | undefined): string {
  return url && url.startsWith('/') && !url.startsWith('//') && !url.startsWith('/signin')
    ? url
    : '/inbox';
}

@Component({
  selector: 'ramp-signin-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h1>Sign in</h1>

    @if (session.session(); as s) {
      <section class="panel" aria-labelledby="current-h">
        <h2 id="current-h">Signed in</h2>
        <p>
          You are signed in as <strong>{{ s.email ?? 'a user without an email claim' }}</strong>.
        </p>
        <div class="actions">
          <button type="button" class="primary" (click)="continue()">Continue</button>
          <button type="button" (click)="session.signOut()">Sign out</button>
        </div>
      </section>
    }

    @if (session.config.oidc) {
      <section class="panel" aria-labelledby="oidc-h">
        <h2 id="oidc-h">With your organisation's account</h2>
        <p>Sign in at your identity provider; you will come back here.</p>
        <button type="button" class="primary" data-testid="signin-oidc" (click)="oidc()">
          Sign in with OpenID Connect
        </button>
        @if (session.oidcError(); as err) {
          <p class="error" role="alert">{{ err }}</p>
        }
      </section>
    }

    @if (session.config.devMode) {
      <section class="panel" aria-labelledby="dev-h">
        <h2 id="dev-h">Development sign-in</h2>
        <p>
          ramp runs in dev mode: an email is enough (sent as <code>x-ramp-user</code>), with the engine groups
          you are in, if any (<code>x-ramp-groups</code>: their group tasks reach your inbox).
        </p>
        <form (submit)="dev($event)" novalidate>
          <label for="dev-email">Email</label>
          <input
            id="dev-email"
            type="email"
            name="email"
            autocomplete="email"
            required
            data-testid="signin-dev-email"
            [value]="devEmail()"
            (input)="devEmail.set(value($event))"
            [attr.aria-invalid]="devError() ? true : null"
            [attr.aria-describedby]="devError() ? 'dev-error' : null"
          />
          @if (devError(); as err) {
            <p id="dev-error" class="error" role="alert">{{ err }}</p>
          }
          <label for="dev-groups">Groups (optional, comma-separated)</label>
          <input
            id="dev-groups"
            type="text"
            name="groups"
            autocomplete="off"
            data-testid="signin-dev-groups"
            [value]="devGroups()"
            (input)="devGroups.set(value($event))"
          />
          <button type="submit" class="primary" data-testid="signin-dev-submit">Sign in</button>
        </form>
      </section>
    }

    <section class="panel" aria-labelledby="token-h">
      <h2 id="token-h">With a token</h2>
      <p>
        Paste a bearer token (a JWT, e.g. from <code>ramp token --email you&#64;example.com</code>).
        It is kept in this browser until you sign out.
      </p>
      <form (submit)="token($event)" novalidate>
        <label for="token">Token</label>
        <textarea
          id="token"
          name="token"
          rows="4"
          spellcheck="false"
          autocomplete="off"
          data-testid="signin-token"
          [value]="tokenText()"
          (input)="tokenText.set(value($event))"
          [attr.aria-invalid]="tokenError() ? true : null"
          [attr.aria-describedby]="tokenError() ? 'token-error' : null"
        ></textarea>
        @if (tokenError(); as err) {
          <p id="token-error" class="error" role="alert">{{ err }}</p>
        }
        <button type="submit" class="primary" data-testid="signin-token-submit" [disabled]="checking()">
          {{ checking() ? 'Checking…' : 'Sign in with token' }}
        </button>
      </form>
    </section>
  `,
})
export class SigninPage {
  readonly session = inject(SessionService);
  private readonly router = inject(Router);

  /** From ?returnUrl=... (set by the guard). */
  readonly returnUrl = input<string>();

  readonly tokenText = signal('');
  readonly tokenError = signal<string | null>(null);
  readonly checking = signal(false);
  readonly devEmail = signal('');
  readonly devGroups = signal('');
  readonly devError = signal<string | null>(null);

  constructor() {
    if (this.session.oidcJustSignedIn() && this.session.signedIn()) {
      this.session.oidcJustSignedIn.set(false);
      void this.router.navigateByUrl(safeReturnUrl(this.session.takeReturnUrl()), { replaceUrl: true });
    }
  }

  value(ev: Event): string {
    return (ev.target as HTMLInputElement | HTMLTextAreaElement).value;
  }

  continue(): void {
    void this.router.navigateByUrl(safeReturnUrl(this.returnUrl()));
  }

  async token(ev: Event): Promise<void> {
    ev.preventDefault();
    if (this.checking()) {
      return;
    }
    this.checking.set(true);
    try {
      const err = await this.session.signInWithToken(this.tokenText(), checkToken);
      this.tokenError.set(err);
      if (!err) {
        this.tokenText.set('');
        this.continue();
      } else {
        document.getElementById('token')?.focus();
      }
    } finally {
      this.checking.set(false);
    }
  }

  dev(ev: Event): void {
    ev.preventDefault();
    const err = this.session.signInDev(this.devEmail(), this.devGroups());
    this.devError.set(err);
    if (!err) {
      this.continue();
    }
  }

  oidc(): void {
    this.session.signInOidc(safeReturnUrl(this.returnUrl()));
  }
}

/**
 * Asks ramp whether it takes this token (one small call, outside the app's
 * session): null when it does, else the server's reason. Any other failure (ramp
 * unreachable) lets the sign-in go ahead: the inbox then says it is offline.
 */
async function checkToken(token: string): Promise<string | null> {
  const forms = createClient(
    FormService,
    createGrpcWebTransport({ baseUrl: window.location.origin, useBinaryFormat: true }),
  );
  try {
    await forms.listFormTasks({ pageSize: 1 }, { headers: { authorization: `Bearer ${token}` } });
    return null;
  } catch (e) {
    const err = ConnectError.from(e);
    return err.code === Code.Unauthenticated ? err.rawMessage || 'not accepted' : null;
  }
}
