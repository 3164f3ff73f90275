//! Card tokens across instances. In cluster mode every token an instance issues is stored,
//! its card number sealed under the partner's key, in Redis; an instance handed a token it
//! did not issue looks it up there. In the embedded mode there is one instance and nothing
//! to share.

use super::Stores;
use crate::body::masking::PartnerKey;

/// Stores the tokens issued since the last call in the shared vault. Called before an
/// answer carrying new tokens leaves, so any instance can reverse them by the time the
/// partner sends one back. Tokens Redis did not take are offered again next time.
pub async fn share(stores: &Stores) {
    let Some(cluster) = &stores.cluster else {
        return;
    };
    let fresh = stores.token_vault.take_unshared();
    if fresh.is_empty() {
        return;
    }
    if let Err(error) = cluster.tokens_put(&fresh).await {
        tracing::warn!(
            %error,
            count = fresh.len(),
            "card tokens not shared yet; only this instance can reverse them until Redis answers"
        );
        stores.token_vault.requeue(fresh);
    }
}

/// Learns, from the shared vault, the tokens among `candidates` that another instance
/// issued to `partner`. Returns whether any was learnt.
pub async fn recall(stores: &Stores, partner: &str, key: Option<&PartnerKey>, candidates: &[String]) -> bool {
    let (Some(cluster), Some(key)) = (&stores.cluster, key) else {
        return false;
    };
    if candidates.is_empty() {
        return false;
    }
    let tokens: Vec<&str> = candidates.iter().map(String::as_str).collect();
    let found = match cluster.tokens_get(partner, &tokens).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "shared card-token vault unreachable; tokens from other instances not reversed");
            return false;
        }
    };
    let mut learnt = false;
    for (token, sealed) in tokens.iter().zip(found) {
        // A record that does not open was not sealed for this partner and token: ignored.
        if let Some(number) = sealed.and_then(|sealed| key.open(token, &sealed)) {
            stores.token_vault.remember(partner, token, &number);
            learnt = true;
        }
    }
    learnt
}
