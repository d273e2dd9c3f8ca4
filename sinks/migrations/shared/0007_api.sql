-- Both flavours: the incident API's tokens and the one-tap links already used.

-- One row per person's token; the secret is stored only as HMAC-SHA256(token_key, secret).
CREATE TABLE api_tokens (
  id text PRIMARY KEY,                 -- the public part of the token
  name text NOT NULL,                  -- the person
  role text NOT NULL CHECK (role IN ('viewer', 'officer', 'admin')),
  hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL,
  last_used_at timestamptz,
  revoked_at timestamptz
);

-- A link works once: its nonce is recorded in the transaction that acts on it.
CREATE TABLE link_uses (
  nonce text PRIMARY KEY,
  incident_id uuid NOT NULL,
  officer text NOT NULL,
  action text NOT NULL,
  used_at timestamptz NOT NULL DEFAULT now()
);

SELECT ioc_grant('SELECT, INSERT, UPDATE', 'TABLE api_tokens, link_uses', 'ioc.ingest_role');
