/** The claims of a JWT, read without checking its signature (ramp checks that). */
export function jwtClaims(token: string): Record<string, unknown> | null {
  const parts = token.split('.');
  if (parts.length !== 3) {
    return null;
  }
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' && !Array.isArray(claims)
      ? (claims as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** The token's email claim, trimmed and lowercased as ramp does, or null. */
export function jwtEmail(token: string): string | null {
  const email = jwtClaims(token)?.['email'];
  return typeof email === 'string' && email.trim() !== '' ? email.trim().toLowerCase() : null;
}

/** Seconds since the epoch at which the token expires, or null when it does not say. */
export function jwtExpiry(token: string): number | null {
  const exp = jwtClaims(token)?.['exp'];
  return typeof exp === 'number' ? exp : null;
}
