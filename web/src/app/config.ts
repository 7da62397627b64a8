import { InjectionToken } from '@angular/core';

/**
 * What /config.json (served next to index.html) may say. Every field is optional;
 * a missing or unreadable file means: sign in by pasting a token only.
 */
export interface RuntimeConfig {
  /** The OpenID Connect issuer (authority), e.g. https://login.example.com/realms/ramp. */
  oidcIssuer?: string;
  /** The public client's id at that issuer (authorization code + PKCE). */
  oidcClientId?: string;
  /** Scopes to ask for; default "openid profile email offline_access". */
  oidcScope?: string;
  /**
   * Which token to send to ramp: "access" (default) or "id". ramp needs a JWT with
   * a verified email and its audience; some providers put those only in the ID token.
   */
  oidcToken?: 'access' | 'id';
  /** ramp runs with RAMP_AUTH=dev: sign in with an email alone (x-ramp-user header). */
  devMode?: boolean;
}

/** The configuration with the OIDC part checked: present only when complete. */
export interface AppConfig {
  oidc: { issuer: string; clientId: string; scope: string; token: 'access' | 'id' } | null;
  devMode: boolean;
}

export const APP_CONFIG = new InjectionToken<AppConfig>('ramp.app-config');

function nonEmpty(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
}

/** Turns whatever config.json held into a checked configuration. */
export function toAppConfig(raw: unknown): AppConfig {
  const r = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const issuer = nonEmpty(r['oidcIssuer']);
  const clientId = nonEmpty(r['oidcClientId']);
  return {
    oidc:
      issuer && clientId
        ? {
            issuer,
            clientId,
            scope: nonEmpty(r['oidcScope']) ?? 'openid profile email offline_access',
            token: r['oidcToken'] === 'id' ? 'id' : 'access',
          }
        : null,
    devMode: r['devMode'] === true,
  };
}

/**
 * Reads /config.json before the app starts. A missing file (404), a network error
 * or bad JSON all mean the defaults: token paste only.
 */
export async function loadAppConfig(): Promise<AppConfig> {
  try {
    const response = await fetch(new URL('config.json', document.baseURI), {
      cache: 'no-store',
      headers: { accept: 'application/json' },
    });
    if (!response.ok) {
      return toAppConfig(null);
    }
    const type = response.headers.get('content-type') ?? '';
    if (!type.includes('json')) {
      // A server that answers every path with index.html (SPA fallback) is not a config.
      return toAppConfig(null);
    }
    return toAppConfig(await response.json());
  } catch {
    return toAppConfig(null);
  }
}
