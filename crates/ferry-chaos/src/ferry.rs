//! The real `ferry` binary, driven as a user would: a task file, `ferry run` in the
//! background (its output appended to a log file), kill -9, restart, a final
//! `ferry run --exit-when-caught-up`, `ferry end`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One task and the `ferry run` process working on it, if any.
pub struct Ferry {
    bin: PathBuf,
    /// The task file.
    pub task: PathBuf,
    /// Where every run's output goes.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Ferry {
    /// Writes the task file `name.yaml` into `dir`.
    pub fn new(
        bin: &Path,
        dir: &Path,
        name: &str,
        source: &str,
        target: &str,
        chunk_rows: u64,
    ) -> Result<Ferry> {
        let task = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &task,
            format!(
                "name: {name}\nkind: migration\nmode: full+incremental\nsource: {source}\ntarget: {target}\n\
                 chunk_rows: {chunk_rows}\njobs: 2\n"
            ),
        )?;
        Ok(Ferry {
            bin: bin.to_path_buf(),
            log: dir.join(format!("{name}.log")),
            task,
            child: None,
        })
    }

    fn log_file(&self) -> Result<std::fs::File> {
        Ok(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?)
    }

    fn note(&self, what: &str) {
        use std::io::Write;
        if let Ok(mut f) = self.log_file() {
            let _ = writeln!(f, "=== ferry-chaos: {what}");
        }
    }

    /// Starts `ferry run <task>` in the background.
    pub fn start(&mut self) -> Result<()> {
        self.note("start ferry run");
        let log = self.log_file()?;
        let child = Command::new(&self.bin)
            .arg("run")
            .arg(&self.task)
            .arg("--quiet")
            .env("FERRY_LOG", "info")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Takes the running `ferry run` out of this handle (to freeze it and let another
    /// run take over); its output still goes to the log.
    pub fn detach(&mut self) -> Option<Child> {
        self.child.take()
    }

    /// Notes `what` in the log (between Ferry's own lines).
    pub fn mark(&self, what: &str) {
        self.note(what);
    }

    /// kill -9 of the running `ferry run`.
    pub fn kill9(&mut self, why: &str) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.note(&format!("kill -9 ({why})"));
        }
    }

    /// If the running `ferry run` has exited by itself: its status and last log lines.
    pub fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(format!("{status}: {}", self.tail(3)))
            }
            _ => None,
        }
    }

    /// The last `n` lines Ferry logged.
    pub fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("=== ferry-chaos"))
            .collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }

    /// Stops the running `ferry run` with SIGTERM (a clean stop), waiting for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(_)) = c.try_wait() {
                    self.note("stopped (SIGTERM)");
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
            self.note("did not stop within 60 s of SIGTERM: killed");
        }
    }

    /// `ferry run --exit-when-caught-up`: applies everything the source committed.
    pub fn catch_up(&mut self, timeout: Duration) -> Result<()> {
        self.stop();
        self.note("catch-up run (--exit-when-caught-up)");
        let log = self.log_file()?;
        let mut c = Command::new(&self.bin)
            .arg("run")
            .arg(&self.task)
            .args(["--quiet", "--exit-when-caught-up"])
            .env("FERRY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let t0 = Instant::now();
        loop {
            if let Some(status) = c.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!("catch-up run exited with {status}: {}", self.tail(3));
            }
            if t0.elapsed() > timeout {
                let _ = c.kill();
                let _ = c.wait();
                bail!(
                    "catch-up run did not finish within {timeout:?}: {}",
                    self.tail(3)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `ferry end`: drops the PostgreSQL slot and publication.
    pub fn end(&mut self) {
        self.stop();
        let _ = Command::new(&self.bin)
            .arg("end")
            .arg(&self.task)
            .env("FERRY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
