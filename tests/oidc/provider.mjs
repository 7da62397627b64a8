#!/usr/bin/env node
// Minimal OpenID Connect provider for ramp's integration tests.
//
// Usage: node tests/oidc/provider.mjs --port PORT --keys FILE
//
//   --port PORT  TCP port to listen on (127.0.0.1 only); 0 picks a free port.
//   --keys FILE  JSON array of *private* JWKs. If FILE does not exist, one new
//                RSA-2048 / RS256 key with a random `kid` is generated and
//                written there. The FIRST key signs access tokens; every key
//                is published at the jwks_uri. Restarting on the same port with
//                another keys file therefore simulates a key rotation.
//
// The issuer is exactly `http://127.0.0.1:<port>`. Once the server listens,
// the only line ever written to stdout is `READY <issuer>`; all diagnostics
// go to stderr. SIGTERM / SIGINT shut the server down and exit with status 0.
//
// Token request (client_credentials grant, POST <issuer>/token):
//   client `ramp-test` / secret `ramp-test-secret`, authenticated either with
//   HTTP Basic (client_secret_basic) or with client_id + client_secret in the
//   form body (client_secret_post); oidc-provider accepts both for a client
//   registered with either of the two methods.
//   grant_type=client_credentials
//   resource=urn:ramp        optional, urn:ramp is the default resource
//   email=...                optional -> claim `email` (string)
//   email_verified=true|false optional -> claim `email_verified` (boolean)
//   roles=a,b,c              optional -> claims `roles` and `realm_access.roles`
//                            (array of strings, like Keycloak)
// The response's access_token is an RS256 JWT (header typ `at+jwt`) with
// aud `urn:ramp`, a 300 s lifetime (--client-token-ttl SECS to change it) and
// sub/client_id `ramp-test`.
//
// People signing in (--web-app URL): the public client `ramp-web` (authorization
// code + PKCE, redirect URL/signin) and a login page of this provider's own at
// /interaction/<uid>. With --accounts FILE (a JSON array of
// {"email", "password", "name"?, "groups"?}) only those accounts sign in, each with
// its password; without it any login name and any password do (the name becomes the
// email, `<name>@example.com` when it has no @). Consent is implied (the app is
// first-party). Their access tokens carry `email`, `email_verified` and `groups`:
// the account's "groups" (engine group ids, e.g. ["reviewers"]), else [].

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

// stdout is reserved for the READY line: oidc-provider prints its notices with
// console.info, so route everything that would go to stdout to stderr instead.
console.log = console.error;
console.info = console.error;

const CLIENT_ID = 'ramp-test';
const CLIENT_SECRET = 'ramp-test-secret';
const RESOURCE = 'urn:ramp';
const ACCESS_TOKEN_TTL = 300;
// Token request parameters turned into access token claims.
const CLAIM_PARAMS = ['email', 'email_verified', 'roles'];

function fail(message) {
  console.error(`oidc test provider: ${message}`);
  process.exit(2);
}

function parseCommandLine() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string' },
        keys: { type: 'string' },
        'web-app': { type: 'string' },
        accounts: { type: 'string' },
        audience: { type: 'string' },
        'hs256-secret-file': { type: 'string' },
        'client-token-ttl': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail(`${err.message}\nusage: node provider.mjs --port PORT --keys FILE`);
  }
  if (values.port === undefined || values.keys === undefined) {
    fail('usage: node provider.mjs --port PORT --keys FILE');
  }
  if (!/^\d+$/.test(values.port) || Number(values.port) > 65535) {
    fail(`invalid --port ${JSON.stringify(values.port)}`);
  }
  const ttl = values['client-token-ttl'];
  if (ttl !== undefined && !/^[1-9]\d*$/.test(ttl)) {
    fail(`invalid --client-token-ttl ${JSON.stringify(ttl)}`);
  }
  return {
    port: Number(values.port),
    keysFile: values.keys,
    webApp: values['web-app'],
    accountsFile: values.accounts,
    clientTokenTtl: ttl === undefined ? ACCESS_TOKEN_TTL : Number(ttl),
    audience: values.audience ?? RESOURCE,
    hs256SecretFile: values['hs256-secret-file'],
  };
}

function generateKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: crypto.randomBytes(12).toString('base64url'),
    alg: 'RS256',
    use: 'sig',
  };
}

function loadOrCreateKeys(file) {
  if (!fs.existsSync(file)) {
    const keys = [generateKey()];
    // 'wx': never clobber a file another process created in the meantime.
    fs.writeFileSync(file, `${JSON.stringify(keys, null, 2)}\n`, { flag: 'wx', mode: 0o600 });
    console.error(`oidc test provider: generated signing key ${keys[0].kid} in ${file}`);
    return keys;
  }

  let keys;
  try {
    keys = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`cannot read keys file ${file}: ${err.message}`);
  }
  if (!Array.isArray(keys) || keys.length === 0) {
    fail(`keys file ${file} must hold a non-empty JSON array of private JWKs`);
  }
  keys.forEach((jwk, i) => {
    if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) {
      fail(`keys file ${file}: entry ${i} is not a JWK object`);
    }
    if (typeof jwk.kid !== 'string' || jwk.kid === '') {
      fail(`keys file ${file}: entry ${i} has no kid`);
    }
    if (jwk.d === undefined) {
      fail(`keys file ${file}: entry ${i} (kid ${jwk.kid}) is not a private key`);
    }
  });
  return keys;
}

// Tiny in-memory storage adapter. Providing one (instead of relying on
// oidc-provider's built-in development adapter) keeps the "development-only
// adapter" warning away. JWT access tokens are not stored at all, so this only
// matters for whatever else the provider decides to persist.
const store = new Map();
class MemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    store.set(this.key(id), { payload, expiresAt });
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid) {
    for (const [key] of store) {
      if (key.startsWith(`${this.model}:`)) {
        const payload = await this.find(key.slice(this.model.length + 1));
        if (payload?.uid === uid) return payload;
      }
    }
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const [key] of store) {
      if (key.startsWith(`${this.model}:`)) {
        const payload = await this.find(key.slice(this.model.length + 1));
        if (payload?.userCode === userCode) return payload;
      }
    }
    return undefined;
  }

  async consume(id) {
    const payload = await this.find(id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const [key, { payload }] of store) {
      if (payload?.grantId === grantId) store.delete(key);
    }
  }
}

// Returns the single value of a token request body parameter, or undefined.
function bodyParam(ctx, name) {
  // oidc-provider only keeps the parameters it knows about for a grant type in
  // ctx.oidc.params (see "extraParams" below), so read the parsed form body.
  const value = ctx.oidc?.body?.[name];
  if (Array.isArray(value)) {
    throw new errors.InvalidRequest(`'${name}' parameter must only be provided once`);
  }
  return typeof value === 'string' ? value : undefined;
}

function claimsFromTokenRequest(ctx) {
  const claims = {};

  const email = bodyParam(ctx, 'email');
  if (email !== undefined) claims.email = email;

  const emailVerified = bodyParam(ctx, 'email_verified');
  if (emailVerified !== undefined) {
    if (emailVerified !== 'true' && emailVerified !== 'false') {
      throw new errors.InvalidRequest("'email_verified' must be 'true' or 'false'");
    }
    claims.email_verified = emailVerified === 'true';
  }

  const roles = bodyParam(ctx, 'roles');
  if (roles !== undefined) {
    const list = roles.split(',').map((role) => role.trim()).filter(Boolean);
    claims.roles = list;
    claims.realm_access = { roles: [...list] };
  }

  return Object.keys(claims).length ? claims : undefined;
}

const { port, keysFile, webApp, accountsFile, clientTokenTtl, audience, hs256SecretFile } = parseCommandLine();
// --hs256-secret-file FILE: access tokens are HS256 JWTs signed with the secret in
// FILE (as ramp's RAMP_JWT_SECRET_FILE), for a ramp that also takes tokens minted
// with `ramp token`; --audience sets their `aud` (urn:ramp by default).
let hs256Key = null;
if (hs256SecretFile !== undefined) {
  try {
    hs256Key = crypto.createSecretKey(Buffer.from(fs.readFileSync(hs256SecretFile, 'utf8').trim()));
  } catch (err) {
    fail(`cannot read --hs256-secret-file ${hs256SecretFile}: ${err.message}`);
  }
}
// With --web-app URL, a browser app at URL can sign users in too (see the top).
const WEB_CLIENT = 'ramp-web';
const emailOf = (accountId) => (accountId.includes('@') ? accountId : `${accountId}@example.com`);

function loadAccounts(file) {
  if (file === undefined) return null;
  let list;
  try {
    list = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`cannot read accounts file ${file}: ${err.message}`);
  }
  const valid = (a) =>
    typeof a?.email === 'string' &&
    typeof a?.password === 'string' &&
    (a.groups === undefined || (Array.isArray(a.groups) && a.groups.every((g) => typeof g === 'string')));
  if (!Array.isArray(list) || !list.every(valid)) {
    fail(`accounts file ${file} must hold a JSON array of {"email", "password", "groups"?: [strings]}`);
  }
  return new Map(list.map((a) => [a.email.trim().toLowerCase(), a]));
}
const accounts = loadAccounts(accountsFile);
/** The groups of a signed-in account: its "groups" in the accounts file, else none. */
const groupsOf = (accountId) => accounts?.get(emailOf(accountId))?.groups ?? [];

/** The account a login name and password sign in as, or null. */
function checkLogin(login, password) {
  const email = emailOf(String(login ?? '').trim().toLowerCase());
  if (email === '@example.com') return null;
  if (accounts === null) return email;
  const account = accounts.get(email);
  if (!account) return null;
  const given = Buffer.from(String(password ?? ''));
  const wanted = Buffer.from(account.password);
  return given.length === wanted.length && crypto.timingSafeEqual(given, wanted) ? email : null;
}
const keys = loadOrCreateKeys(keysFile);
const signingKey = keys[0];

// Imported only now so that command line / keys file errors are reported
// without oidc-provider's import-time notices in front of them.
const { default: Provider, errors } = await import('oidc-provider');

const server = http.createServer();
server.on('error', (err) => {
  console.error(`oidc test provider: ${err.message}`);
  process.exit(1);
});
await new Promise((resolve) => {
  server.listen({ port, host: '127.0.0.1' }, resolve);
});

const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  adapter: MemoryAdapter,
  jwks: { keys: structuredClone(keys) },
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      // Registered method is client_secret_basic, but oidc-provider treats
      // client_secret_basic and client_secret_post as interchangeable at the
      // token endpoint, so both `curl -u id:secret` and client_id/client_secret
      // form parameters work.
      token_endpoint_auth_method: 'client_secret_basic',
    },
    ...(webApp
      ? [
          {
            client_id: WEB_CLIENT,
            token_endpoint_auth_method: 'none',
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            redirect_uris: [`${webApp}/signin`],
            post_logout_redirect_uris: [`${webApp}/signin`],
          },
        ]
      : []),
  ],
  findAccount: async (ctx, accountId) => ({
    accountId,
    claims: async () => ({ sub: accountId, email: emailOf(accountId), email_verified: true }),
  }),
  claims: { email: ['email', 'email_verified'], openid: ['sub'] },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  pkce: { required: () => true },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', ...(webApp ? ['none'] : [])],
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  // Documented for completeness: oidc-provider applies extraParams to the
  // authorization-type endpoints (authorization, PAR, device, CIBA) only; the
  // token endpoint drops unknown parameters from ctx.oidc.params, which is why
  // extraTokenClaims reads them from the parsed request body instead.
  extraParams: CLAIM_PARAMS,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Tokens are for urn:ramp even when the request omits `resource`.
      defaultResource: async (ctx, client, oneOf) => oneOf ?? RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator, client) => {
        if (resourceIndicator !== RESOURCE) {
          throw new errors.InvalidTarget(`unknown resource indicator; only ${RESOURCE} is served`);
        }
        return {
          scope: 'openid email profile offline_access',
          audience,
          accessTokenTTL: client?.clientId === CLIENT_ID ? clientTokenTtl : ACCESS_TOKEN_TTL,
          accessTokenFormat: 'jwt',
          jwt: {
            sign: hs256Key ? { alg: 'HS256', key: hs256Key } : { alg: signingKey.alg ?? 'RS256', kid: signingKey.kid },
          },
        };
      },
    },
  },
  ttl: {
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? clientTokenTtl,
    AccessToken: ACCESS_TOKEN_TTL,
  },
  extraTokenClaims: async (ctx, token) => {
    if (token.kind === 'AccessToken' && token.accountId) {
      return { email: emailOf(token.accountId), email_verified: true, groups: groupsOf(token.accountId) };
    }
    if (token.kind !== 'ClientCredentials') return undefined;
    return claimsFromTokenRequest(ctx);
  },
  clientBasedCORS: () => true,
  // The web app's tabs share one session and may renew it at the same moment: the
  // refresh token stays the same, so the second renewal is not taken for a replay.
  rotateRefreshToken: false,
});

provider.on('server_error', (ctx, err) => {
  console.error('oidc test provider: server error:', err);
});
provider.on('grant.error', (ctx, err) => {
  console.error(`oidc test provider: token request failed: ${err.error}: ${err.error_description ?? err.message}`);
});

const escapeHtml = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

/** The login page: plain HTML, no script, styles in the page. */
function loginPage(uid, { login = '', problem = null } = {}) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · ramp test accounts</title>
<style>
  body { font-family: system-ui, sans-serif; background: #f5f6f8; color: #1b1f24; margin: 0; }
  main { max-width: 24rem; margin: 3rem auto; padding: 1.5rem; background: #fff; border: 1px solid #d0d7de; border-radius: 6px; }
  h1 { font-size: 1.4rem; margin: 0 0 1rem; }
  label { display: block; font-weight: 600; margin: 0.75rem 0 0.25rem; }
  input { width: 100%; box-sizing: border-box; padding: 0.5rem; font: inherit; min-height: 44px; border: 1px solid #8c959f; border-radius: 6px; }
  button { margin-top: 1rem; min-height: 44px; padding: 0.45rem 1rem; font: inherit; color: #fff; background: #1f4e79; border: 0; border-radius: 6px; }
  :focus-visible { outline: 3px solid #0b63ce; outline-offset: 2px; }
  .problem { color: #b42318; font-weight: 500; }
  .muted { color: #57606a; font-size: 0.9rem; }
</style>
</head>
<body>
<main>
<h1>Sign in to ramp</h1>
${problem ? `<p class="problem" role="alert">${escapeHtml(problem)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label for="login">Email</label>
<input id="login" name="login" type="email" required autofocus value="${escapeHtml(login)}">
<label for="password">Password</label>
<input id="password" name="password" type="password" required>
<button type="submit">Sign in</button>
</form>
<p class="muted">${accounts === null ? 'Test provider: any email and any password sign in.' : 'The demo accounts were printed when the provider started.'}</p>
</main>
</body>
</html>
`;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 16_384) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function sendHtml(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  // The login form posts here, and the answer redirects on to the app (form-action
  // covers the redirects after a form's submission too).
  res.setHeader(
    'Content-Security-Policy',
    `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${new URL(webApp).origin}; frame-ancestors 'none'`,
  );
  res.end(html);
}

/** Grants what the client asked for (a first-party app: consent is implied). */
async function consent(req, res, details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const id = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId: id } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  if (details.prompt.name === 'consent') return consent(req, res, details);
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const email = checkLogin(form.get('login'), form.get('password'));
    if (email === null) {
      return sendHtml(res, 200, loginPage(uid, { login: form.get('login') ?? '', problem: 'Wrong email or password.' }));
    }
    return provider.interactionFinished(req, res, { login: { accountId: email } }, { mergeWithLastSubmission: false });
  }
  return sendHtml(res, 200, loginPage(uid));
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const match = /^\/interaction\/([^/?]+)(?:\/(login))?(?:\?.*)?$/.exec(req.url ?? '');
  if (!webApp || !match) return callback(req, res);
  interaction(req, res, match[1], match[2]).catch((err) => {
    console.error(`oidc test provider: interaction: ${err.message}`);
    if (!res.headersSent) sendHtml(res, 400, `<!doctype html><title>Sign-in failed</title><p>${escapeHtml(err.message)}</p>`);
  });
});

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`oidc test provider: ${signal} received, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

console.error(`oidc test provider: signing with kid ${signingKey.kid}; ${keys.length} key(s) published`);
process.stdout.write(`READY ${issuer}\n`);
