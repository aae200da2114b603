//! Compiles the .slint files. Debug info is always on: the testing backend finds elements
//! by id and accessible label with it, and a field tech's introspection tools can too.
//! Translations (lang/<lang>/LC_MESSAGES/edge-kiosk.po) are bundled into the binary.

fn main() {
    let config = slint_build::CompilerConfiguration::new()
        .with_style("fluent".into())
        .with_bundled_translations("lang")
        .with_default_translation_context(slint_build::DefaultTranslationContext::None)
        .with_debug_info(true);
    if let Err(e) = slint_build::compile_with_config("ui/main.slint", config) {
        panic!("the .slint files do not compile: {e}");
    }
    println!("cargo:rerun-if-changed=lang");
}
