//! Prints the shell view of a command: `cargo run --example shell_view -- 'sudo rm -rf ~'`.
//! The workspace is the current directory and the home `$HOME`, as for `fak preflight`.

fn main() {
    let script = std::env::args().nth(1).unwrap_or_default();
    let cwd = std::env::current_dir().map(|d| d.to_string_lossy().into_owned()).unwrap_or_else(|_| "/".into());
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    println!("{:#?}", fak::shell::view(&script, &cwd, &home));
}
