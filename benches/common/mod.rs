//! What the benches that compile a real policy set share: a gateway.toml, a product and a
//! writer. Each bench uses part of it.
#![allow(dead_code)]

use std::path::Path;

/// The host partners use in production in every bench policy set.
pub const HOST: &str = "api.bench";

/// gateway.toml for a bench: both environments (production on `HOST`), listeners on
/// ephemeral ports, one upstream `core` (nothing listens at its address: the benches
/// measure stages, not calls), then `extra` (an `[oauth]` table, say).
pub fn gateway_toml(name: &str, extra: &str) -> String {
    format!(
        r#"[gateway]
name = "{name}"

[[listeners]]
name = "public"
address = "127.0.0.1:0"

[admin]
address = "127.0.0.1:0"

[environments.sandbox]
hosts = ["sandbox.bench"]

[environments.production]
hosts = ["{HOST}"]

[upstreams.core]
url = "http://127.0.0.1:9/core"
connect_timeout = "500ms"
timeout = "5s"
{extra}"#
    )
}

/// The `items` product: `GET /v1/items/{item_id}` (route `items.get`, scope `items:read`)
/// on `core` in production, of `data_class`; `route_extra` ends the route's table.
pub fn items_toml(data_class: &str, route_extra: &str) -> String {
    format!(
        r#"id = "items"
name = "Items"
version = "1.0.0"
data_class = "{data_class}"

[upstream]
production = "core"

[[routes]]
id = "items.get"
method = "GET"
path = "/v1/items/{{item_id}}"
scope = "items:read"
upstream_path = "/items/{{item_id}}"
{route_extra}"#
    )
}

/// Writes `text` to `rel` under `root`, creating the directories it needs.
pub fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}
