// A real OpenID Provider for Lookout's tests: panva's oidc-provider (an OpenID Certified
// implementation, from npm), on a loopback port, with the people and the one client the test
// gives it. Its sign-in step is a plain form (user name, password, "used a second factor"),
// so a test's HTTP client can drive it; consent is granted at once.
//
// Environment: IDP_USERS (JSON: {"name": {"password": "...", "claims": {...}}}),
// IDP_CLIENT (JSON: {"client_id", "client_secret", "redirect_uris": [...]}).
// Prints "listening <issuer>" on stdout once it serves.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const users = JSON.parse(process.env.IDP_USERS || '{}');
const client = JSON.parse(process.env.IDP_CLIENT || '{}');

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), use: 'sig', alg: 'RS256', kid: crypto.randomUUID() };

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{ ...client, grant_types: ['authorization_code'], response_types: ['code'] }],
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub', 'amr'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups', 'roles', 'hd'],
  },
  // Entra and Google put the person's claims in the ID token; so does this provider.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!users[id]) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...users[id].claims }) };
  },
});

const form = (req) => new Promise((resolve) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(body))));
});

const page = (res, status, html) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>Test IdP</title>${html}`);
};

const callback = provider.callback();
server.on('request', async (req, res) => {
  const m = req.url.match(/^\/interaction\/([A-Za-z0-9_-]+)(\/login|\/abort)?$/);
  if (!m) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
    if (prompt.name === 'consent') {
      const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
      if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    if (m[2] === '/abort') {
      return provider.interactionFinished(req, res,
        { error: 'access_denied', error_description: 'the person cancelled' }, { mergeWithLastSubmission: false });
    }
    if (m[2] === '/login' && req.method === 'POST') {
      const f = await form(req);
      const user = users[f.login];
      if (!user || user.password !== f.password) {
        return page(res, 401, `<p id="error">Wrong user name or password</p>`);
      }
      const amr = f.mfa ? ['pwd', 'mfa'] : ['pwd'];
      return provider.interactionFinished(req, res, { login: { accountId: f.login, amr } },
        { mergeWithLastSubmission: false });
    }
    return page(res, 200, `<form method="post" action="/interaction/${details.uid}/login">
      <input name="login"><input name="password" type="password">
      <label><input type="checkbox" name="mfa" value="1"> second factor</label>
      <button>Sign in</button></form>
      <form method="post" action="/interaction/${details.uid}/abort"><button>Cancel</button></form>`);
  } catch (e) {
    return page(res, 400, `<p id="error">${String(e.message).replace(/[<&]/g, '')}</p>`);
  }
});

console.log(`listening ${issuer}`);
