//! maskflow's transform for Node.js (integrations/node/README.md): a thin wasm-bindgen face over
//! `maskflow-transform`, built for wasm32 only by `scripts/build-wasm --js` (-> pkg/); natively
//! the crate is empty, so the workspace build never compiles wasm-bindgen.
//!
//! ```js
//! const { Masker } = require("./pkg/maskflow_node.js");
//! const m = new Masker(JSON.stringify({ keys: [{ id: "k1", key: "<base64>" }] }));
//! m.transform(Buffer.from(body), "message-id", Date.now()); // {row: {...}} or {rejection: {...}}
//! m.unmask("k1.AbC...");                                     // "199.172.111.135"
//! ```
#![cfg(target_arch = "wasm32")]

use maskflow_transform::{Config, Message, OutcomeJson, Transformer};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
pub struct Masker {
    inner: Transformer,
}

#[wasm_bindgen]
impl Masker {
    /// `config`: the same JSON as the ABI's `init` (ABI.md).
    #[wasm_bindgen(constructor)]
    pub fn new(config: &str) -> Result<Masker, JsError> {
        let inner = Config::from_json(config).and_then(Transformer::new)?;
        Ok(Masker { inner })
    }

    /// Output column names, in row order.
    pub fn columns(&self) -> Vec<String> {
        self.inner.columns().to_vec()
    }

    /// `{row: {column: text|null}}` or `{rejection: {reason, message, encrypted_body}}`.
    pub fn transform(
        &mut self,
        body: &[u8],
        message_id: &str,
        sent_timestamp_ms: f64,
    ) -> Result<JsValue, JsError> {
        let message = Message { id: message_id, body, sent_timestamp_ms: sent_timestamp_ms as i64 };
        let columns = self.inner.columns().to_vec();
        let json = match self.inner.transform(&message) {
            Ok(row) => serde_json::to_string(&OutcomeJson::Row { columns: &columns, row }),
            Err(rejection) => serde_json::to_string(&OutcomeJson::Rejection(&rejection)),
        }?;
        js_sys::JSON::parse(&json).map_err(|_| JsError::new("internal: outcome JSON did not parse"))
    }

    /// The clear value of a mask (UTF-8, lossy for a rejected body that was not UTF-8).
    pub fn unmask(&self, mask: &str) -> Result<String, JsError> {
        let unmasked = self.inner.unmask(mask)?;
        Ok(String::from_utf8_lossy(&unmasked.value).into_owned())
    }
}
