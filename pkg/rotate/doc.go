// Package rotate holds danehook's key rotation (DESIGN.md §5): the key
// specifications and key generation of `danectl rotate stage`, the staged
// key's status, commit and abort, the `rotate_every` policy that
// `danectl tick` applies, and dane-prerenew's step (Pin): hand a committed
// staged key to the ACME client, then make the next renewal reuse the key.
//
// A rotation never breaks the invariant because it only ever adds a
// record (Stage publishes the next key's 3 1 1 beside the current one) or
// asks pkg/deploy to withdraw records by its own rules (Abort); the switch
// to the new key is an ordinary renewal, which dane-deploy installs only
// once the staged key's record is aged. Every function that changes state
// takes the engine's lock (deploy.Engine.Lock) for its whole run.
//
// It may import pkg/deploy and the leaves (chain, tlsa, certbot, lego,
// config, propagate); nothing in pkg/ imports it.
package rotate
