//! The figure driver. A figure declares what is its own (`Sketch`): its canvases and extra
//! controls, the job its drawing needs for the settings now, how a result comes in, and its
//! drawing; its settings are the catalogue's. `Driven` owns the rest, once for every figure: the
//! settings' controls and their values, the state that controls, pointers and jobs reach, the
//! job schedule (one job in flight, the newest request next, the ones it replaced dropped:
//! `schedule::Jobs`), redrawing after anything changed, animation time, the status line, CSV.
//! The page (`page.rs`) owns what is the same for every figure from outside: visibility, the
//! animation loop, the address, downloads, theme changes and removal.

use super::{Figure, FrameClock, Status};
use crate::catalog::{FigureSpec, Kind, Setting};
use crate::schedule::Jobs;
use crate::web::controls::{self, element, JsResult, Listeners, Slider};
use futures_util::future::LocalBoxFuture;
use std::cell::RefCell;
use std::rc::Rc;
use web_sys::{Element, HtmlElement, HtmlSelectElement};

/// The value of a setting.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Number(f64),
    Choice(String),
}

/// A figure's settings and their values now (the catalogue's defaults at first).
pub struct Settings(Vec<(&'static Setting, Value)>);

impl Settings {
    fn defaults(settings: &'static [Setting]) -> Settings {
        Settings(
            settings
                .iter()
                .map(|s| {
                    let v = match s.kind {
                        Kind::Number { .. } => Value::Number(s.number()),
                        Kind::Choice { .. } => Value::Choice(s.choice().to_string()),
                    };
                    (s, v)
                })
                .collect(),
        )
    }

    fn value(&self, setting: &Setting) -> Option<&Value> {
        self.0
            .iter()
            .find(|(s, _)| s.key == setting.key)
            .map(|(_, v)| v)
    }

    /// The number setting's value (its default if the figure has no such setting).
    pub fn number(&self, setting: &Setting) -> f64 {
        match self.value(setting) {
            Some(Value::Number(v)) => *v,
            _ => setting.number(),
        }
    }

    /// The number setting's value as f32 bits, for a job's key (a key must compare exactly).
    pub fn bits(&self, setting: &Setting) -> u32 {
        (self.number(setting) as f32).to_bits()
    }

    /// The choice setting's value (its default if the figure has no such setting).
    pub fn choice(&self, setting: &Setting) -> &str {
        match self.value(setting) {
            Some(Value::Choice(v)) => v,
            _ => setting.choice(),
        }
    }

    fn set(&mut self, key: &str, value: Value) {
        if let Some((_, v)) = self.0.iter_mut().find(|(s, _)| s.key == key) {
            *v = value;
        }
    }
}

enum Control {
    Slider(Slider),
    Select(HtmlSelectElement),
}

/// What a figure's hooks and callbacks may touch besides the figure itself: its settings (a
/// number set here moves its slider), its status line, whether a job is in flight.
pub struct Ctx<'a> {
    settings: &'a mut Settings,
    controls: &'a [(&'static str, Control)],
    pub status: &'a Status,
    /// A job is in flight.
    pub busy: bool,
    /// This drawing follows more than the animation (a setting, a result, visibility, the
    /// theme, a download): what the animation leaves alone must be drawn too.
    pub full: bool,
}

impl Ctx<'_> {
    pub fn settings(&self) -> &Settings {
        self.settings
    }

    /// Sets a number setting as the program (an animation) moves it: the slider follows,
    /// without firing its event.
    pub fn set_number(&mut self, setting: &Setting, value: f64) {
        self.settings.set(setting.key, Value::Number(value));
        if let Some(Control::Slider(s)) = self.control(setting) {
            s.set(value);
        }
    }

    /// Enables or disables a setting's control (a setting that means nothing now).
    pub fn enable(&self, setting: &Setting, enabled: bool) {
        match self.control(setting) {
            Some(Control::Slider(s)) => s.input.set_disabled(!enabled),
            Some(Control::Select(s)) => s.set_disabled(!enabled),
            None => {}
        }
    }

    fn control(&self, setting: &Setting) -> Option<&Control> {
        self.controls
            .iter()
            .find(|(k, _)| *k == setting.key)
            .map(|(_, c)| c)
    }
}

/// A figure as it declares itself to the driver.
pub trait Sketch: Sized + 'static {
    /// Its entry in the catalogue: its name and settings.
    const SPEC: &'static FigureSpec;
    /// The prefix of its controls' element ids ("vf" gives "vf-t").
    const ID: &'static str;
    /// The inputs of one job (settings, a data version): requests with equal keys are one job.
    type Key: Clone + PartialEq + 'static;
    /// What a job gives back.
    type Output: 'static;

    /// Builds the figure's canvases and its controls beyond the settings', in `ui` (what the
    /// settings make comes with `changed(None)`).
    fn mount(ui: &mut Ui<'_, Self>) -> JsResult<Self>;

    /// The setting `key` changed (the reader's hand, the address, an attribute, the JS API);
    /// `None` once, when mounted, for every setting at its default.
    fn changed(&mut self, _key: Option<&str>, _ctx: &mut Ctx<'_>) {}

    /// The job the drawing needs now; None when it needs none. Asked after every change and
    /// every frame: a job starts only while it is still wanted.
    fn wanted(&self, _settings: &Settings) -> Option<Self::Key> {
        None
    }

    /// Starts the job for `key`: what it needs is copied or shared into the future.
    fn job(
        &mut self,
        _key: &Self::Key,
        _ctx: &mut Ctx<'_>,
    ) -> LocalBoxFuture<'static, Self::Output> {
        no_job()
    }

    /// The job for `key` ended with `output` (its key may be an old one: a drag moves on).
    fn done(&mut self, _key: Self::Key, _output: Self::Output, _ctx: &mut Ctx<'_>) {}

    /// A frame while visible, `dt` seconds after the previous one (0 after a pause): true when
    /// the figure moved and must be drawn again.
    fn animate(&mut self, _dt: f64, _ctx: &mut Ctx<'_>) -> bool {
        false
    }

    /// Draws the figure.
    fn draw(&mut self, ctx: &mut Ctx<'_>) -> JsResult<()>;

    /// What the figure shows, as CSV with a header row; None before any data.
    fn csv(&self, _settings: &Settings) -> Option<String> {
        None
    }
}

/// The job of a figure that never wants one (`wanted` is always None): never started.
fn no_job<O: 'static>() -> LocalBoxFuture<'static, O> {
    Box::pin(std::future::pending())
}

struct Inner<S: Sketch> {
    root: Element,
    sketch: S,
    settings: Settings,
    controls: Vec<(&'static str, Control)>,
    status: Status,
    jobs: Jobs<S::Key>,
    clock: FrameClock,
    needs_draw: bool,
    /// The next drawing is a full one (see `Ctx::full`).
    full: bool,
}

impl<S: Sketch> Inner<S> {
    /// The figure, and the context its hooks get.
    fn parts(&mut self) -> (&mut S, Ctx<'_>) {
        let Inner {
            sketch,
            settings,
            controls,
            status,
            jobs,
            full,
            ..
        } = self;
        let ctx = Ctx {
            settings,
            controls,
            status,
            busy: jobs.busy(),
            full: *full,
        };
        (sketch, ctx)
    }

    /// Asks for the job the drawing needs now (a waiting request it no longer needs is
    /// dropped).
    fn ask(&mut self) {
        match self.sketch.wanted(&self.settings) {
            Some(key) => self.jobs.ask(key),
            None => self.jobs.cancel(),
        }
    }

    /// Runs `f` on the figure with its context, then asks for the job its drawing now needs
    /// and marks it for drawing.
    fn with<R>(&mut self, f: impl FnOnce(&mut S, &mut Ctx<'_>) -> R) -> R {
        let (sketch, mut ctx) = self.parts();
        let r = f(sketch, &mut ctx);
        self.ask();
        self.needs_draw = true;
        self.full = true;
        r
    }
}

type Cell<S> = Rc<RefCell<Option<Inner<S>>>>;

/// A way back to the figure from a control's or a pointer's callback.
pub struct Handle<S: Sketch>(Cell<S>);

impl<S: Sketch> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Handle(self.0.clone())
    }
}

impl<S: Sketch> Handle<S> {
    /// Runs `f` on the figure (once it is mounted), then schedules and redraws as needed.
    pub fn with(&self, f: impl FnOnce(&mut S, &mut Ctx<'_>)) {
        if let Some(inner) = self.0.borrow_mut().as_mut() {
            inner.with(f);
        }
    }
}

/// Where a figure builds itself: its root, the row of controls (the settings' are already in
/// it), and the listeners that live as long as the figure.
pub struct Ui<'a, S: Sketch> {
    pub root: &'a Element,
    pub panel: &'a HtmlElement,
    pub listeners: &'a mut Listeners,
    handle: Handle<S>,
}

impl<S: Sketch> Ui<'_, S> {
    pub fn handle(&self) -> Handle<S> {
        self.handle.clone()
    }

    /// A button in the row of controls.
    pub fn button(
        &mut self,
        text: &str,
        f: impl Fn(&mut S, &mut Ctx<'_>) + 'static,
    ) -> JsResult<HtmlElement> {
        let h = self.handle();
        controls::button(self.panel, self.listeners, text, move || h.with(&f))
    }

    /// Listens to `event` on `target`, with the figure.
    pub fn on(
        &mut self,
        target: &web_sys::EventTarget,
        event: &str,
        f: impl Fn(&mut S, &mut Ctx<'_>, &web_sys::Event) + 'static,
    ) -> JsResult<()> {
        let h = self.handle();
        self.listeners
            .on(target, event, move |e| h.with(|s, ctx| f(s, ctx, &e)))
    }
}

/// A figure mounted and driven.
pub struct Driven<S: Sketch> {
    cell: Cell<S>,
    _listeners: Listeners,
    /// Redraws the figure when a canvas of it is shown at a new width (a phone turned, a
    /// window resized); dropped with the figure, it forgets its canvases.
    _resized: crate::web::drawing::Observer,
}

impl<S: Sketch> Driven<S> {
    pub fn mount(root: &Element) -> JsResult<Driven<S>> {
        let spec = S::SPEC;
        let cell: Cell<S> = Rc::new(RefCell::new(None));
        let handle = Handle(cell.clone());
        let mut listeners = Listeners::default();
        let panel = element("div", "figure-controls", root)?;
        let on_change: Rc<dyn Fn(&'static str, Value)> = {
            let h = handle.clone();
            Rc::new(move |key, value| changed(&h, key, value))
        };
        let built = setting_controls(&panel, &mut listeners, S::ID, spec.settings, on_change)?;
        let settings = Settings::defaults(spec.settings);
        let mut ui = Ui {
            root,
            panel: &panel,
            listeners: &mut listeners,
            handle,
        };
        let sketch = S::mount(&mut ui)?;
        let mut inner = Inner {
            root: root.clone(),
            sketch,
            settings,
            controls: built,
            status: Status::new(root)?,
            jobs: Jobs::default(),
            clock: FrameClock::default(),
            needs_draw: true,
            full: true,
        };
        inner.with(|s, ctx| s.changed(None, ctx));
        *cell.borrow_mut() = Some(inner);
        let h = Handle(cell.clone());
        let resized = crate::web::drawing::Observer::new(root, move || h.with(|_, _| {}))?;
        Ok(Driven {
            cell,
            _listeners: listeners,
            _resized: resized,
        })
    }

    /// Starts the next job, if one is wanted and none is in flight.
    fn start_job(cell: &Cell<S>) {
        let job = {
            let mut b = cell.borrow_mut();
            let Some(inner) = b.as_mut() else { return };
            let Some((number, key)) = inner.jobs.start() else {
                return;
            };
            let (sketch, mut ctx) = inner.parts();
            let future = sketch.job(&key, &mut ctx);
            (number, key, future)
        };
        let (number, key, future) = job;
        let cell = cell.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let output = future.await;
            if let Some(inner) = cell.borrow_mut().as_mut() {
                inner.jobs.finish(number);
                inner.with(|s, ctx| s.done(key, output, ctx));
            }
        });
    }
}

/// The settings' controls in `panel`, each telling `on_change` its key and new value. Written
/// once for every figure rather than once per figure type: what is generic stays in `Driven`.
fn setting_controls(
    panel: &Element,
    listeners: &mut Listeners,
    prefix: &str,
    settings: &'static [Setting],
    on_change: Rc<dyn Fn(&'static str, Value)>,
) -> JsResult<Vec<(&'static str, Control)>> {
    let mut built = Vec::with_capacity(settings.len());
    for setting in settings {
        let id = format!("{prefix}-{}", setting.key);
        let key = setting.key;
        let f = on_change.clone();
        let control = match setting.kind {
            Kind::Number { .. } => {
                Control::Slider(Slider::new(panel, listeners, &id, setting, move |v| {
                    f(key, Value::Number(v))
                })?)
            }
            Kind::Choice { .. } => Control::Select(controls::select(
                panel,
                listeners,
                &id,
                setting,
                move |v| f(key, Value::Choice(v)),
            )?),
        };
        built.push((key, control));
    }
    Ok(built)
}

/// After a drawing: its error on the status line, and the jobs so far on the root for tests and
/// tools (started, dropped before they started, started since the one whose result is drawn).
fn after_drawing(root: &Element, status: &Status, drawing: JsResult<()>, jobs: [u64; 3]) {
    if let Err(e) = drawing {
        status.error(&format!("{e:?}"));
    }
    let [started, dropped, lag] = jobs;
    let _ = root.set_attribute("data-jobs", &format!("{started} {dropped} {lag}"));
}

fn changed<S: Sketch>(handle: &Handle<S>, key: &'static str, value: Value) {
    if let Some(inner) = handle.0.borrow_mut().as_mut() {
        inner.settings.set(key, value);
        inner.with(|s, ctx| s.changed(Some(key), ctx));
    }
}

impl<S: Sketch> Figure for Driven<S> {
    fn frame(&mut self, now: f64, may_draw: bool) {
        {
            let mut b = self.cell.borrow_mut();
            let Some(inner) = b.as_mut() else { return };
            let dt = inner.clock.tick(now);
            let (sketch, mut ctx) = inner.parts();
            if sketch.animate(dt, &mut ctx) {
                inner.needs_draw = true;
            }
            inner.ask();
        }
        Self::start_job(&self.cell);
        let mut b = self.cell.borrow_mut();
        let Some(inner) = b.as_mut() else { return };
        if inner.needs_draw && may_draw {
            inner.needs_draw = false;
            let (sketch, mut ctx) = inner.parts();
            let drawing = sketch.draw(&mut ctx);
            inner.full = false;
            let jobs = &inner.jobs;
            after_drawing(
                &inner.root,
                &inner.status,
                drawing,
                [jobs.started, jobs.dropped, jobs.lag()],
            );
        }
    }

    fn set_visible(&mut self, _visible: bool) {
        if let Some(inner) = self.cell.borrow_mut().as_mut() {
            inner.clock.reset();
            inner.needs_draw = true;
            inner.full = true;
        }
    }

    fn csv(&self) -> Option<String> {
        let b = self.cell.borrow();
        let inner = b.as_ref()?;
        inner.sketch.csv(&inner.settings)
    }
}

impl<S: Sketch> Drop for Driven<S> {
    fn drop(&mut self) {
        // The state goes now; a job still in flight finds nothing when it ends.
        if let Ok(mut b) = self.cell.try_borrow_mut() {
            *b = None;
        }
    }
}
