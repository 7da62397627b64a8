import { Injectable, Injector, computed, inject, signal } from '@angular/core';
import { OidcSecurityService } from 'angular-auth-oidc-client';
import { firstValueFrom } from 'rxjs';

import { APP_CONFIG } from '../config';
import { jwtEmail, jwtExpiry } from './jwt';

/** How the user signed in. */
export type SessionKind = 'token' | 'oidc' | 'dev';

/** Who is signed in in this tab. */
export interface Session {
  kind: SessionKind;
  /** The caller's email: the token's email claim, or the dev email; null when a
   * pasted token has none (ramp will then refuse it). */
  email: string | null;
}

/** What localStorage keeps: shared by this browser's tabs, so a new tab is signed
 * in too, and a sign-out in one tab signs them all out. */
type Stored =
  | { kind: 'token'; token: string }
  | { kind: 'dev'; email: string; groups?: string[] }
  | { kind: 'oidc'; email?: string };

const STORAGE_KEY = 'ramp.session';
const RETURN_KEY = 'ramp.returnUrl';
const EMAIL_RE = /^[^\s@]+@[^\s@]+$/;

function readStored(): Stored | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    if (!raw) {
      return null;
    }
    const s = JSON.parse(raw) as Partial<Stored> & Record<string, unknown>;
    if (s.kind === 'token' && typeof s['token'] === 'string') {
      return { kind: 'token', token: s['token'] };
    }
    if (s.kind === 'dev' && typeof s['email'] === 'string') {
      const groups = Array.isArray(s['groups']) ? s['groups'].filter((g) => typeof g === 'string') : [];
      return { kind: 'dev', email: s['email'], groups };
    }
    if (s.kind === 'oidc') {
      return typeof s['email'] === 'string' ? { kind: 'oidc', email: s['email'] } : { kind: 'oidc' };
    }
  } catch {
    // unreadable: treat as signed out
  }
  return null;
}

function writeStored(s: Stored | null): void {
  try {
    if (s) {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(s));
    } else {
      localStorage.removeItem(STORAGE_KEY);
    }
  } catch {
    // storage full or disabled: the session lives in memory only
  }
}

/**
 * The signed-in user and the headers that authenticate ramp calls. Pasted tokens
 * and dev emails are kept in localStorage (all tabs of this browser share them);
 * OIDC tokens are kept by angular-auth-oidc-client (also in localStorage, see
 * app.config.ts) and renewed by it. Another tab signing in or out is heard
 * through the `storage` event.
 */
@Injectable({ providedIn: 'root' })
export class SessionService {
  readonly config = inject(APP_CONFIG);
  private readonly injector = inject(Injector);
  private stored: Stored | null = readStored();
  private readonly listeners = new Set<() => void>();

  /** The session, or null when signed out. */
  readonly session = signal<Session | null>(
    this.sessionOf(this.stored, this.stored?.kind === 'oidc' ? (this.stored.email ?? null) : null),
  );
  readonly email = computed(() => this.session()?.email ?? null);
  readonly signedIn = computed(() => this.session() !== null);
  /** Set when ramp refused the credentials and they could not be renewed. */
  readonly expired = signal(false);
  /** An OIDC sign-in problem to show on the sign-in screen. */
  readonly oidcError = signal<string | null>(null);
  /** Set when this page load finished an OIDC sign-in (the sign-in page moves on). */
  readonly oidcJustSignedIn = signal(false);

  constructor() {
    window.addEventListener('storage', (e) => {
      if (e.key !== STORAGE_KEY && e.key !== null) {
        return;
      }
      const s = readStored();
      if (JSON.stringify(s) === JSON.stringify(this.stored)) {
        return;
      }
      this.stored = s;
      this.session.set(this.sessionOf(s, s?.kind === 'oidc' ? (s.email ?? null) : null));
      this.expired.set(false);
      this.changed();
    });
  }

  private oidcService(): OidcSecurityService | null {
    return this.config.oidc ? this.injector.get(OidcSecurityService) : null;
  }

  private sessionOf(s: Stored | null, oidcEmail: string | null): Session | null {
    switch (s?.kind) {
      case 'token':
        return { kind: 'token', email: jwtEmail(s.token) };
      case 'dev':
        return this.config.devMode ? { kind: 'dev', email: s.email } : null;
      case 'oidc':
        return this.config.oidc ? { kind: 'oidc', email: oidcEmail } : null;
      default:
        return null;
    }
  }

  /** Called back whenever the credentials change (sign-in, sign-out, renewal). */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of [...this.listeners]) {
      l();
    }
  }

  private set(s: Stored | null, oidcEmail: string | null = null): void {
    this.stored = s;
    writeStored(s);
    this.session.set(this.sessionOf(s, oidcEmail));
    this.expired.set(false);
    this.changed();
  }

  /**
   * Runs once before the app renders: finishes an OIDC redirect (code in the URL)
   * or restores an OIDC session of this tab. Never throws: a provider that cannot be
   * reached only leaves the user signed out.
   */
  async init(): Promise<void> {
    const oidc = this.oidcService();
    if (!oidc) {
      if (this.stored && !this.session()) {
        this.set(null);
      }
      return;
    }
    const params = new URLSearchParams(window.location.search);
    const isCallback = params.has('state') && (params.has('code') || params.has('error'));
    if (!isCallback && this.stored?.kind !== 'oidc') {
      return;
    }
    try {
      const result = await firstValueFrom(oidc.checkAuth());
      if (result.isAuthenticated) {
        const token = this.config.oidc?.token === 'id' ? result.idToken : result.accessToken;
        const email = jwtEmail(token) ?? emailOf(result.userData);
        this.set(email ? { kind: 'oidc', email } : { kind: 'oidc' }, email);
        this.oidcJustSignedIn.set(isCallback);
      } else {
        if (result.errorMessage) {
          this.oidcError.set(`Sign-in failed: ${result.errorMessage}`);
        }
        if (this.stored?.kind === 'oidc') {
          this.set(null);
        }
      }
    } catch (e) {
      this.oidcError.set(`The identity provider could not be reached (${String(e)}).`);
      if (this.stored?.kind === 'oidc') {
        this.set(null);
      }
    }
  }

  /**
   * Signs in with a pasted JWT once `check` (a call to ramp with it) accepts it.
   * Returns a problem to show, or null on success: an expired token is told apart
   * from one the server refuses (bad signature, wrong audience, no email...).
   */
  async signInWithToken(input: string, check: (token: string) => Promise<string | null>): Promise<string | null> {
    const token = input.trim().replace(/^bearer\s+/i, '');
    if (token === '') {
      return 'Paste a token.';
    }
    if (/\s/.test(token)) {
      return 'A token has no spaces or line breaks.';
    }
    const exp = jwtExpiry(token);
    if (exp !== null && exp * 1000 < Date.now()) {
      return `This token expired on ${new Date(exp * 1000).toLocaleString()}: get a new one.`;
    }
    const refused = await check(token);
    if (refused !== null) {
      return `The server refused this token: ${refused}`;
    }
    this.set({ kind: 'token', token });
    return null;
  }

  /** Signs in with an email alone (ramp in dev mode), in the engine groups listed
   * in `groupList` (comma-separated, may be empty). */
  signInDev(input: string, groupList = ''): string | null {
    if (!this.config.devMode) {
      return 'Dev sign-in is off.';
    }
    const email = input.trim().toLowerCase();
    if (!EMAIL_RE.test(email)) {
      return 'Enter an email address.';
    }
    const groups = groupList
      .split(',')
      .map((g) => g.trim())
      .filter((g) => g !== '');
    this.set({ kind: 'dev', email, groups });
    return null;
  }

  /** Sends the browser to the identity provider (authorization code + PKCE). */
  signInOidc(returnUrl: string | null): void {
    const oidc = this.oidcService();
    if (!oidc) {
      return;
    }
    this.oidcError.set(null);
    try {
      if (returnUrl) {
        sessionStorage.setItem(RETURN_KEY, returnUrl);
      }
    } catch {
      // ignore
    }
    oidc.authorize();
  }

  /** Where to go after an OIDC sign-in came back (read once). */
  takeReturnUrl(): string | null {
    try {
      const url = sessionStorage.getItem(RETURN_KEY);
      sessionStorage.removeItem(RETURN_KEY);
      return url;
    } catch {
      return null;
    }
  }

  signOut(): void {
    const wasOidc = this.stored?.kind === 'oidc';
    this.set(null);
    if (wasOidc) {
      this.oidcService()?.logoffLocal();
    }
  }

  /** The current bearer token (OIDC: as the library holds it now), or null. */
  private async currentToken(): Promise<string | null> {
    const s = this.stored;
    if (s?.kind === 'token') {
      return s.token;
    }
    if (s?.kind === 'oidc') {
      const oidc = this.oidcService();
      if (!oidc) {
        return null;
      }
      const token = await firstValueFrom(
        this.config.oidc?.token === 'id' ? oidc.getIdToken() : oidc.getAccessToken(),
      );
      return token || null;
    }
    return null;
  }

  /** The headers that authenticate a ramp call right now (read afresh each call). */
  async authHeaders(): Promise<Record<string, string>> {
    const s = this.stored;
    if (s?.kind === 'dev') {
      return s.groups?.length
        ? { 'x-ramp-user': s.email, 'x-ramp-groups': s.groups.join(',') }
        : { 'x-ramp-user': s.email };
    }
    const token = await this.currentToken();
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  /** A value that changes whenever the credentials do. */
  async credential(): Promise<string> {
    const s = this.stored;
    if (!s) {
      return '';
    }
    if (s.kind === 'dev') {
      return `dev:${s.email}:${s.groups?.join(',') ?? ''}`;
    }
    return `${s.kind}:${(await this.currentToken()) ?? ''}`;
  }

  /** Whether the credentials may still be good: a pasted token not past its `exp`
   * (OIDC tokens are renewed by the library; dev emails do not expire). */
  credentialLooksValid(): boolean {
    const s = this.stored;
    if (!s) {
      return false;
    }
    if (s.kind === 'token') {
      const exp = jwtExpiry(s.token);
      return exp === null || exp * 1000 > Date.now();
    }
    return true;
  }

  /**
   * ramp answered UNAUTHENTICATED with `used` (from credential()). Returns true when
   * different credentials are available now (the OIDC library renewed, or the user
   * signed in again meanwhile); otherwise marks the session expired.
   */
  async renew(used: string): Promise<boolean> {
    if ((await this.credential()) !== used && this.stored) {
      return true;
    }
    const oidc = this.stored?.kind === 'oidc' ? this.oidcService() : null;
    if (oidc) {
      try {
        const result = await firstValueFrom(oidc.forceRefreshSession());
        if (result?.isAuthenticated && (await this.credential()) !== used) {
          this.changed();
          return true;
        }
      } catch {
        // fall through: the session cannot be renewed
      }
    }
    if (this.stored) {
      this.expired.set(true);
    }
    return false;
  }
}

function emailOf(userData: unknown): string | null {
  const email = (userData as Record<string, unknown> | null)?.['email'];
  return typeof email === 'string' && email.trim() !== '' ? email.trim().toLowerCase() : null;
}
