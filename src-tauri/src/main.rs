// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // WebKitGTK's DMA-BUF renderer doubled the idle web process: 211 MB of PSS against 110 MB
    // without it (Xvfb, 2026-12-03; the app's three processes 330 MB against 232 MB). It is also
    // the usual cure for blank WebKitGTK windows on some GPU drivers. A user's own setting wins.
    // Set before any thread exists, as `set_var` requires.
    #[cfg(target_os = "linux")]
    if std::env::var_os("WEBKIT_DISABLE_DMABUF_RENDERER").is_none() {
        std::env::set_var("WEBKIT_DISABLE_DMABUF_RENDERER", "1");
    }
    quarry_desktop::run()
}
