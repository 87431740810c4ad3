use berth_runtime::*;
use oci_spec::runtime::*;
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut spec = Spec::default();
    let mut p = spec.process().clone().unwrap();
    p.set_args(Some(args));
    p.set_terminal(Some(false));
    spec.set_process(Some(p));
    spec.set_hostname(Some("smoke".into()));
    let mut root = spec.root().clone().unwrap();
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    let rt = Runtime::new("/tmp/smoke/state");
    let id = format!("s{}", std::process::id());
    let t = std::time::Instant::now();
    let c = rt.create(
        &id,
        std::path::Path::new("/tmp/smoke/bundle"),
        CreateOptions {
            spec: Some(spec),
            ..Default::default()
        },
    );
    let c = match c {
        Ok(c) => c,
        Err(e) => {
            eprintln!("create: {e}");
            std::process::exit(1)
        }
    };
    eprintln!(
        "created {:?} status {} in {:?}",
        c.pid(),
        c.status(),
        t.elapsed()
    );
    c.start().unwrap();
    eprintln!("started status {}", c.status());
    let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(c.oci_state().pid), None);
    eprintln!(
        "exit {:?} status {} total {:?}",
        st,
        c.status(),
        t.elapsed()
    );
    let o = c.delete(false).unwrap();
    eprintln!("deleted {:?} total {:?}", o, t.elapsed());
}
