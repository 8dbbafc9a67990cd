//! A real headless Chromium, driven through chromedriver (WebDriver) by
//! fantoccini, for the dashboard's tests.
//!
//! chromedriver runs on a free port in a process group of its own, with a
//! fresh profile directory, and Chromium is told to fetch nothing: this
//! machine has no network, and a test must not depend on one. Dropping the
//! [`Browser`] ends the session and the whole process group, so no Chromium
//! outlives its test, even a failed one.

use super::DEFAULT_DEADLINE;
use super::process::Process;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use std::path::PathBuf;

/// Debian's packages (`apt-get install chromium chromium-driver`, done by
/// `.ci/setup`); `WEIR_CHROMIUM` and `WEIR_CHROMEDRIVER` override them.
fn program(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: run .ci/setup (it installs chromium and chromium-driver) or set {variable}",
        path.display()
    );
    path
}

/// A headless Chromium session.
#[derive(Debug)]
pub(crate) struct Browser {
    client: Option<Client>,
    driver: Process,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(crate) async fn start() -> Browser {
        let chromium = program("WEIR_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("WEIR_CHROMEDRIVER", "/usr/bin/chromedriver");
        let mut command = tokio::process::Command::new(chromedriver);
        command.arg("--port=0").process_group(0);
        let mut driver = Process::spawn_command("chromedriver", &mut command);
        let port: u16 = driver
            .wait_for_line(DEFAULT_DEADLINE, |line| {
                line.strip_prefix("ChromeDriver was started successfully on port ")?
                    .trim_end_matches('.')
                    .parse()
                    .ok()
            })
            .await;
        let profile = super::scratch_dir();
        let args = [
            "--headless".to_owned(),
            // Tests run as root in a container: no sandbox, no GPU, a small /dev/shm.
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            // Nothing from the network: no first-run pages, updates or sync.
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "start a Chromium session: {e}\nchromedriver:\n{}",
                    driver.output()
                )
            });
        Browser {
            client: Some(client),
            driver,
            _profile: profile,
        }
    }

    pub(crate) fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("load {url}: {e}"));
    }

    /// The text of the first element matching `css`, or why there is none
    /// (for `eventually`).
    pub(crate) async fn text(&self, css: &str) -> Result<String, String> {
        let element = self
            .client()
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("no element {css}: {e}"))?;
        element
            .text()
            .await
            .map_err(|e| format!("no text in {css}: {e}"))
    }

    /// Ends the session and the browser.
    pub(crate) async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await.expect("close the Chromium session");
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group: this ends Chromium too.
        // The `--` matters: procps-ng 4.0's kill misreads `-KILL -PID` and
        // signals every process it may (found the hard way).
        if let Some(pid) = self.driver.id().filter(|pid| *pid > 1) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}
