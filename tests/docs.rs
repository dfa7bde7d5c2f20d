//! What the documentation states that the code decides: the `cargo bench`
//! profiles. A change of either fails here until both agree.

use sockbench::plan::BenchProfile;

#[test]
fn readme_states_the_bench_profiles_as_the_code_has_them() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let flat = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    for p in [BenchProfile::Full, BenchProfile::Quick] {
        let said = p.describe();
        assert!(
            flat.contains(&said),
            "README.md should say `{said}` for {p:?}"
        );
    }
}
