//! The Quarry desktop app: a thin Tauri shell. It holds window state and forwards commands to
//! the library crates; everything it can do is also reachable through the `quarry` CLI, and the
//! command handlers are plain functions tested without a window.

pub mod commands;

/// Starts the desktop app; returns when the last window closes.
pub fn run() {
    quarry_llm::logging::init();
    // Documents are read by the `quarry` beside the app (`quarry worker extract`, confined);
    // without it only plain text is read, and each other file says why.
    if let Ok(engine) = commands::ask::engine_path() {
        quarry_index::set_default_worker(quarry_index::WorkerCommand::quarry(engine));
    }
    let asking = std::sync::Arc::new(commands::AskState::default());
    let on_exit = asking.clone();
    let result = tauri::Builder::default()
        .manage(asking)
        .manage(std::sync::Arc::new(commands::models::Downloads::default()))
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::ask,
            commands::cancel_ask,
            commands::pick_folder,
            commands::history_list,
            commands::history_show,
            commands::history_search,
            commands::history_rm,
            commands::history_export,
            commands::models::download_model,
            commands::models::pause_download,
            commands::models::cancel_download,
            commands::models::delete_model,
            commands::models::import_model,
            commands::settings::get_settings,
            commands::settings::save_settings,
            commands::settings::test_model_connection
        ])
        .build(tauri::generate_context!())
        .map(|app| {
            app.run(move |_, event| {
                // The local engine is a child process: stop it with the app.
                if let tauri::RunEvent::Exit = event {
                    tauri::async_runtime::block_on(on_exit.shutdown());
                }
            })
        });
    if let Err(e) = result {
        // Reached when the window system is unavailable (no display, missing WebKitGTK).
        eprintln!("error: Quarry could not open its window: {e}");
        std::process::exit(1);
    }
}
