//! Headless Chromium driven over WebDriver: a `chromedriver` process on a
//! free loopback port (killed, with the browser it started, when the test
//! ends however it ends), and a fantoccini session on it.
//!
//! Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium,
//! /usr/bin/chromedriver; `.ci/run` installs them); fails naming them when
//! they are missing rather than passing without a browser.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::support::{free_port, guard_against_hang, HANG_GUARD};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How often a wait looks at the page again.
const PAUSE: Duration = Duration::from_millis(150);

/// A chromedriver process and the browser session it drives.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// The browser's profile; its path names the browser's processes.
    profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("profile", &self.profile.path())
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start() -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver \
                 (apt-get install chromium chromium-driver); .ci/run does this in CI"
            );
        }
        let port = free_port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that the browser it starts can be
            // ended with it.
            .process_group(0)
            .kill_on_drop(true);
        let driver = command.spawn().expect("spawn chromedriver");
        let profile = tempfile::tempdir().expect("a profile directory for chromium");
        let url = format!("http://127.0.0.1:{port}");
        wait_for_driver(&url).await;
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1280,800",
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            HANG_GUARD,
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&url),
        )
        .await
        .expect("a browser session within the hang guard")
        .expect("a WebDriver session on chromium");
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// A browser at 1280×800 showing `url`.
    pub async fn open(url: &str) -> Browser {
        let browser = Browser::start().await;
        browser.viewport(1280, 800).await;
        browser.client.goto(url).await.expect("open the page");
        browser
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns `true`; fails with `what` and the
    /// script's last answer after the hang guard.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let started = Instant::now();
        loop {
            let got = self.client.execute(script, vec![]).await;
            if matches!(got, Ok(Value::Bool(true))) {
                return;
            }
            guard_against_hang(started, &format!("{what}: {got:?}"));
            tokio::time::sleep(PAUSE).await;
        }
    }

    /// Clicks the element `selector` inside the parked-stream row of `key`.
    /// The page re-renders every 2 s, which can replace the element between
    /// finding and clicking it: then it is found again.
    pub async fn click_in_row(&self, key: &str, selector: &str) {
        let started = Instant::now();
        loop {
            match self.try_click_in_row(key, selector).await {
                Ok(()) => return,
                Err(e) => guard_against_hang(started, &format!("click {selector} of {key}: {e}")),
            }
            tokio::time::sleep(PAUSE).await;
        }
    }

    async fn try_click_in_row(&self, key: &str, selector: &str) -> Result<(), String> {
        let rows = self
            .client
            .find_all(Locator::Css("#parked-body tr.parked-row"))
            .await
            .map_err(|e| e.to_string())?;
        for row in rows {
            if row
                .attr("data-key")
                .await
                .map_err(|e| e.to_string())?
                .as_deref()
                != Some(key)
            {
                continue;
            }
            let target = row
                .find(Locator::Css(selector))
                .await
                .map_err(|e| e.to_string())?;
            if !target.is_enabled().await.map_err(|e| e.to_string())? {
                return Err("disabled".to_owned());
            }
            return target.click().await.map_err(|e| e.to_string());
        }
        Err("no such row".to_owned())
    }

    /// Resizes the window so that the page's viewport is `width`×`height`
    /// CSS pixels (headless windows may add nothing or a frame).
    pub async fn viewport(&self, width: u32, height: u32) {
        let (mut w, mut h) = (width, height);
        for _ in 0..3 {
            self.client
                .set_window_size(w, h)
                .await
                .expect("set the window size");
            let inner = self
                .js("return [window.innerWidth, window.innerHeight];", vec![])
                .await;
            let (iw, ih) = (
                inner[0].as_u64().unwrap_or(0) as u32,
                inner[1].as_u64().unwrap_or(0) as u32,
            );
            if (iw, ih) == (width, height) {
                return;
            }
            w += width.saturating_sub(iw);
            h += height.saturating_sub(ih);
        }
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        panic!("the viewport is {inner}, not {width}x{height}");
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot directory");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("screenshot: {}", path.display());
    }

    /// Ends the session and the driver.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
        // Drop ends the rest.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(id) = self.driver.id() {
            // The driver's group: chromedriver and the browser it launched.
            let _ = kill(Pid::from_raw(-(id as i32)), Signal::SIGKILL);
        }
        // A browser process that left the group still names its profile.
        for pid in processes_naming(&self.profile.path().to_string_lossy()) {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// Waits until chromedriver answers `/status` with `ready`.
async fn wait_for_driver(url: &str) {
    let client = crate::support::http();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{url}/status")).send().await {
            if let Ok(body) = r.json::<Value>().await {
                if body["value"]["ready"] == true {
                    return;
                }
            }
        }
        guard_against_hang(started, "waiting for chromedriver");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The processes whose command line contains `needle` (this test's own
/// browser profile path: nobody else's process holds it).
fn processes_naming(needle: &str) -> Vec<Pid> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .map(Pid::from_raw)
        .collect()
}
