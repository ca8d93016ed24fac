//! The MNIST digits, fetched once per page when a figure (or `loadDigits`) first asks for them:
//! the download's progress is readable while it runs, concurrent callers share it, and a failed
//! or truncated download can be retried. Also where the files shipped beside the module lie
//! (the digits, the compute worker), in a plain page's copy or a bundler's output alike.

use crate::flow::digits::{self, PIXELS, SIDE};
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Where the asset lies under a base that `setAssetBase` named (Trunk copies www/assets to
/// dist/assets).
const ASSET: &str = "assets/digits.bin";
/// The most bytes a digits download may bring (the asset is under 2 MB).
const MAX_ASSET_BYTES: usize = 16 << 20;

/// The digits in [-1, 1] at full resolution (n x 784), and average-pooled copies made on demand.
pub struct DigitSet {
    pub n: usize,
    /// Shared, not copied, by `pooled(1)`.
    pub full: Rc<Vec<f32>>,
    pooled: RefCell<Vec<(usize, Rc<Vec<f32>>)>>,
}

impl DigitSet {
    /// The digits pooled by `factor` (1, 2, 4, 7 or 14): n x (28 / factor)^2, made the first
    /// time a block of POOL_ROWS digits at a time, with turns for the page in between.
    pub async fn pooled(&self, factor: usize) -> Rc<Vec<f32>> {
        let cached = || {
            let pooled = self.pooled.borrow();
            pooled
                .iter()
                .find(|(f, _)| *f == factor)
                .map(|(_, v)| v.clone())
        };
        if let Some(v) = cached() {
            return v;
        }
        if factor == 1 {
            return self.full.clone();
        }
        let mut v = Vec::with_capacity(self.full.len() / (factor * factor));
        for block in self.full.chunks(POOL_ROWS * PIXELS) {
            v.extend(digits::pool(block, SIDE, factor));
            crate::web::turns::pace().await;
        }
        // Another caller may have made them meanwhile: theirs is kept, so both share one.
        if let Some(v) = cached() {
            return v;
        }
        let v = Rc::new(v);
        self.pooled.borrow_mut().push((factor, v.clone()));
        v
    }
}

/// Digits pooled between two turns for the page (a few milliseconds).
const POOL_ROWS: usize = 1000;

type Pending = Shared<LocalBoxFuture<'static, Result<Rc<DigitSet>, String>>>;

thread_local! {
    static DIGITS: RefCell<Option<Pending>> = const { RefCell::new(None) };
    static READY: RefCell<Option<Rc<DigitSet>>> = const { RefCell::new(None) };
    /// Where `setAssetBase` said the built files lie; None (the default): beside the module.
    static BASE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Bytes received and expected (0 when unknown) of the download in progress.
    static PROGRESS: Cell<(f64, f64)> = const { Cell::new((0.0, 0.0)) };
}

// The files shipped beside the module, each named by a literal `new URL('…', import.meta.url)`:
// the form bundlers (Vite, webpack) follow, copying the file into their output and writing its
// new address here, and that a plain page resolves beside this file. wasm-bindgen emits this
// snippet as snippets/<crate>/inline0.js, two levels below the module and its files.
#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function ownDigitsUrl() {
  return new URL('../../assets/digits.bin', import.meta.url).href;
}
export function ownWorker() {
  return new Worker(new URL('../../worker.js', import.meta.url), { type: 'module' });
}
export function ownLabWorker() {
  return new Worker(new URL('../../digits-worker.js', import.meta.url), { type: 'module' });
}
export function ownWeightsUrl() {
  return new URL('../../weights/digits-unet.fmu', import.meta.url).href;
}
"#)]
extern "C" {
    #[wasm_bindgen::prelude::wasm_bindgen(js_name = ownDigitsUrl)]
    fn own_digits_url() -> String;
    #[wasm_bindgen::prelude::wasm_bindgen(catch, js_name = ownWorker)]
    fn own_worker() -> Result<web_sys::Worker, JsValue>;
    #[wasm_bindgen::prelude::wasm_bindgen(catch, js_name = ownLabWorker)]
    fn own_lab_worker() -> Result<web_sys::Worker, JsValue>;
    #[wasm_bindgen::prelude::wasm_bindgen(js_name = ownWeightsUrl)]
    fn own_weights_url() -> String;
}

/// The digits' address: under the base `setAssetBase` named, else the module's own copy.
pub fn digits_url() -> String {
    BASE.with(|b| b.borrow().as_ref().map(|base| format!("{base}{ASSET}")))
        .unwrap_or_else(own_digits_url)
}

/// The digits' network's weights (www/weights/digits-unet.fmu), as `digits_url`.
pub fn weights_url() -> String {
    BASE.with(|b| {
        b.borrow()
            .as_ref()
            .map(|base| format!("{base}weights/digits-unet.fmu"))
    })
    .unwrap_or_else(own_weights_url)
}

/// A new module worker running `file` (worker.js: a compute worker; digits-worker.js: the digits
/// lab): the one under the base `setAssetBase` named, else the module's own. Fails where the
/// page may not start it (a policy without `worker-src`, a module from another origin).
fn module_worker(
    file: &str,
    own: fn() -> Result<web_sys::Worker, JsValue>,
) -> Result<web_sys::Worker, JsValue> {
    match BASE.with(|b| b.borrow().clone()) {
        Some(base) => {
            let options = web_sys::WorkerOptions::new();
            options.set_type(web_sys::WorkerType::Module);
            web_sys::Worker::new_with_options(&format!("{base}{file}"), &options)
        }
        None => own(),
    }
}

/// A new compute worker (www/worker.js).
pub fn new_worker() -> Result<web_sys::Worker, JsValue> {
    module_worker("worker.js", own_worker)
}

/// The digits lab's worker (www/digits-worker.js, which loads its own module).
pub fn new_lab_worker() -> Result<web_sys::Worker, JsValue> {
    module_worker("digits-worker.js", own_lab_worker)
}

/// Where the built files lie (`worker.js`, `assets/digits.bin`), a URL ending in "/", for a page
/// that keeps them somewhere other than beside the module; "" restores the default: the copies
/// beside the module, or wherever a bundler put them.
#[wasm_bindgen::prelude::wasm_bindgen(js_name = setAssetBase)]
pub fn set_asset_base(
    #[wasm_bindgen(unchecked_param_type = "string")] url: JsValue,
) -> Result<(), wasm_bindgen::JsError> {
    let url = url
        .dyn_ref::<js_sys::JsString>()
        .filter(|s| s.length() <= 2048)
        .ok_or_else(|| {
            wasm_bindgen::JsError::new("url must be a string of at most 2048 characters")
        })?;
    let url = String::from(url);
    if url.is_empty() {
        BASE.with(|b| *b.borrow_mut() = None);
        return Ok(());
    }
    // Only a web address: a base of another scheme (javascript:, data:) is refused here rather
    // than by fetch later.
    let base = web_sys::window()
        .and_then(|w| w.location().href().ok())
        .unwrap_or_default();
    let parsed = web_sys::Url::new_with_base(&url, &base)
        .map_err(|_| wasm_bindgen::JsError::new("url must be a web address"))?;
    if !matches!(parsed.protocol().as_str(), "http:" | "https:") {
        return Err(wasm_bindgen::JsError::new(&format!(
            "url must be an http or https address, got scheme {}",
            parsed.protocol()
        )));
    }
    // Kept absolute: the digits lab's worker fetches under it, where a relative address would
    // resolve against the worker's script rather than the page.
    BASE.with(|b| *b.borrow_mut() = Some(parsed.href()));
    Ok(())
}

/// The digits, if a download has succeeded (for figures whose own attempt failed earlier).
pub fn ready() -> Option<Rc<DigitSet>> {
    READY.with(|r| r.borrow().clone())
}

/// (bytes received, bytes expected or 0 when the server did not say).
pub fn progress() -> (f64, f64) {
    PROGRESS.with(Cell::get)
}

/// The page's digits; the first call starts the download, later ones share it. After a
/// failure the next call downloads again (the retry button).
pub async fn load() -> Result<Rc<DigitSet>, String> {
    let pending = DIGITS.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let url = digits_url();
                async move { fetch_digits(&url).await }
                    .boxed_local()
                    .shared()
            })
            .clone()
    });
    let result = pending.await;
    match &result {
        Ok(d) => READY.with(|r| *r.borrow_mut() = Some(d.clone())),
        Err(_) => {
            DIGITS.with(|cell| cell.borrow_mut().take());
        }
    }
    result
}

fn js_error(context: &str, e: JsValue) -> String {
    let detail = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    // Said as a clause of the page's own sentence, which ends it.
    format!("{context}: {}", detail.trim_end_matches('.'))
}

async fn fetch_digits(url: &str) -> Result<Rc<DigitSet>, String> {
    let window = web_sys::window().ok_or("no window")?;
    PROGRESS.with(|p| p.set((0.0, 0.0)));
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| js_error(&format!("could not download the digits ({url})"), e))?
        .unchecked_into();
    if !response.ok() {
        return Err(format!(
            "could not download the digits ({url}): HTTP {} {}",
            response.status(),
            response.status_text()
        ));
    }
    let expected = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    PROGRESS.with(|p| p.set((0.0, expected)));
    let body = response.body().ok_or("the digits response has no body")?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    // The compressed chunks stay JavaScript's (they go to the browser's inflater as they came).
    let chunks = js_sys::Array::new();
    let mut received = 0usize;
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| js_error("the digits download broke off", e))?;
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .map(|v| v.is_truthy())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &"value".into())
            .map_err(|e| js_error("the digits download broke off", e))?;
        // The stream's own chunk (a Uint8Array), not a copy of it.
        let chunk: js_sys::Uint8Array = value.unchecked_into();
        received += chunk.length() as usize;
        if received > MAX_ASSET_BYTES {
            let _ = reader.cancel();
            return Err(format!(
                "the digits download ({url}) is larger than {MAX_ASSET_BYTES} bytes: not the digits"
            ));
        }
        chunks.push(&chunk);
        PROGRESS.with(|p| p.set((received as f64, expected)));
    }
    if expected > 0.0 && (received as f64) < expected {
        return Err(format!(
            "the digits download stopped at {received} of {expected} bytes"
        ));
    }
    let set = inflate(&chunks).await?;
    debug_assert_eq!(set.pixels.len(), set.n * PIXELS);
    let mut full = Vec::with_capacity(set.pixels.len());
    for chunk in set.pixels.chunks(1 << 20) {
        full.extend(chunk.iter().map(|&p| digits::signed(p)));
        crate::web::turns::pace().await;
    }
    Ok(Rc::new(DigitSet {
        n: set.n,
        full: Rc::new(full),
        pooled: RefCell::new(Vec::new()),
    }))
}

// The Compression Streams standard's inflater, in every engine the page supports (Chromium 103,
// Firefox 113, Safari 16.4 for "deflate-raw"); web-sys keeps it behind its unstable flag.
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(extends = js_sys::Object)]
    type DecompressionStream;
    #[wasm_bindgen(constructor, catch)]
    fn new(format: &str) -> Result<DecompressionStream, JsValue>;
    #[wasm_bindgen(method, getter)]
    fn readable(this: &DecompressionStream) -> web_sys::ReadableStream;
    #[wasm_bindgen(method, getter)]
    fn writable(this: &DecompressionStream) -> web_sys::WritableStream;
}

/// The digits of the downloaded `chunks` (raw DEFLATE), inflated by the browser's own
/// `DecompressionStream` (native code, a chunk at a time between the page's tasks), read as they come and refused past
/// the largest asset's size (`digits::MAX_INFLATED`) before they take the page's memory.
async fn inflate(chunks: &js_sys::Array) -> Result<digits::Digits, String> {
    let damaged = |e: JsValue| js_error("the digits file is damaged (a truncated download?)", e);
    let inflater = DecompressionStream::new("deflate-raw")
        .map_err(|e| js_error("this browser cannot inflate the digits", e))?;
    let compressed = web_sys::Blob::new_with_u8_array_sequence(chunks).map_err(damaged)?;
    let pair = web_sys::ReadableWritablePair::new(&inflater.readable(), &inflater.writable());
    let reader: web_sys::ReadableStreamDefaultReader = compressed
        .stream()
        .pipe_through(&pair)
        .get_reader()
        .unchecked_into();
    let mut raw = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(damaged)?;
        let done = js_sys::Reflect::get(&chunk, &"done".into())
            .map(|v| v.is_truthy())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &"value".into()).map_err(damaged)?;
        let chunk: js_sys::Uint8Array = value.unchecked_into();
        if raw.len() + chunk.length() as usize > digits::MAX_INFLATED {
            let _ = reader.cancel();
            return Err(format!(
                "the digits file is damaged: it inflates past {} bytes ({} digits)",
                digits::MAX_INFLATED,
                digits::MAX_DIGITS
            ));
        }
        let start = raw.len();
        raw.resize(start + chunk.length() as usize, 0);
        chunk.copy_to(&mut raw[start..]);
        // Once the header is in, the rest is allocated once (its size is checked after).
        if start < 8 && raw.len() >= 8 {
            let n = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
            raw.reserve(n.min(digits::MAX_DIGITS) * PIXELS);
        }
    }
    digits::Digits::from_inflated(raw).map_err(|e| e.to_string())
}
