//! The `#[rule]` attribute macro of weir-guest-sdk.
//!
//! It turns a plain Rust function into a weir plugin: it keeps the function
//! as written (so it can be called and tested natively), defines `RULE`, the
//! rule's [`RuleDef`](../weir_guest_sdk/struct.RuleDef.html) that the native
//! test harness runs, and, only when compiling for wasm32, the ABI v1
//! exports, the `weir` host-function imports and the optional `weir.fields`
//! custom section. The generated wasm32 code needs `unsafe` attributes
//! (`no_mangle`, `link_section`, an `extern` block); it lives in the plugin
//! crate so that the SDK itself stays free of `unsafe`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprArray, FnArg, ItemFn, Lit, Path, Type};

/// Makes a function a weir rule. See the crate docs of `weir-guest-sdk`.
///
/// Forms:
/// - `fn f(event: &Event<'_>, out: &mut Outputs<'_>) -> Result<(), E>`: no
///   config.
/// - `fn f(event: &Event<'_>, config: &C, out: &mut Outputs<'_>) -> Result<(), E>`:
///   `C` is deserialized from the manifest's `[config]` at init.
/// - `#[rule(init = setup)]` with `fn setup(config: C, ctx: &InitContext)
///   -> Result<S, E>` and `fn f(event, state: &S, out)`: `setup` builds the
///   state (parse templates once, check settings) from the config.
///
/// Options: `fields = ["topic", "payload"]` sends only those fields;
/// `paths = ["payload.a.b"]` asks the host to extract payload paths
/// (read with `event.extracted(i)`). `E` must convert into
/// `weir_guest_sdk::Error`.
#[proc_macro_attribute]
pub fn rule(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

#[derive(Default)]
struct Options {
    init: Option<Path>,
    fields: Option<Vec<String>>,
    paths: Option<Vec<String>>,
}

fn string_list(array: &ExprArray) -> syn::Result<Vec<String>> {
    array
        .elems
        .iter()
        .map(|e| match e {
            Expr::Lit(lit) => match &lit.lit {
                Lit::Str(s) => {
                    let v = s.value();
                    if v.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                        && !v.contains(['"', '\\'])
                    {
                        Ok(v)
                    } else {
                        Err(syn::Error::new(
                            s.span(),
                            "names and paths must be printable ASCII without `\"` or `\\`",
                        ))
                    }
                }
                _ => Err(syn::Error::new(lit.span(), "expected a string literal")),
            },
            other => Err(syn::Error::new(other.span(), "expected a string literal")),
        })
        .collect()
}

fn parse_options(attr: TokenStream2) -> syn::Result<Options> {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("init") {
            options.init = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("fields") {
            options.fields = Some(string_list(&meta.value()?.parse()?)?);
            Ok(())
        } else if meta.path.is_ident("paths") {
            options.paths = Some(string_list(&meta.value()?.parse()?)?);
            Ok(())
        } else {
            Err(meta.error("expected `init = path`, `fields = [..]` or `paths = [..]`"))
        }
    });
    parser.parse2(attr)?;
    Ok(options)
}

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(","))
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let options = parse_options(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let name = &func.sig.ident;
    let inputs: Vec<&FnArg> = func.sig.inputs.iter().collect();

    let state_type = |arg: &FnArg| -> syn::Result<Type> {
        match arg {
            FnArg::Typed(pat) => match &*pat.ty {
                Type::Reference(r) if r.mutability.is_none() => Ok((*r.elem).clone()),
                other => Err(syn::Error::new(
                    other.span(),
                    "the second parameter must be a shared reference: `&Config`",
                )),
            },
            FnArg::Receiver(r) => Err(syn::Error::new(r.span(), "a rule is a free function")),
        }
    };

    let (state, call, init_body) = match inputs.len() {
        2 => {
            if options.init.is_some() {
                return Err(syn::Error::new(
                    func.sig.inputs.span(),
                    "`init` needs a rule with a state parameter: fn(event, &State, out)",
                ));
            }
            (
                quote!(()),
                quote!(#name(event, out)),
                quote!(::core::result::Result::Ok(())),
            )
        }
        3 => {
            let state = state_type(inputs[1])?;
            let init_body = match &options.init {
                Some(init) => quote! {
                    #init(ctx.config()?, ctx).map_err(::core::convert::Into::into)
                },
                None => quote!(ctx.config::<#state>()),
            };
            (quote!(#state), quote!(#name(event, state, out)), init_body)
        }
        _ => {
            return Err(syn::Error::new(
                func.sig.inputs.span(),
                "a rule takes (event: &Event<'_>, out: &mut Outputs<'_>) or \
                 (event: &Event<'_>, config: &Config, out: &mut Outputs<'_>)",
            ));
        }
    };

    let spec = if options.fields.is_some() || options.paths.is_some() {
        Some(format!(
            "{{\"fields\":{},\"paths\":{}}}",
            json_list(options.fields.as_deref().unwrap_or_default()),
            json_list(options.paths.as_deref().unwrap_or_default())
        ))
    } else {
        None
    };
    let fields_const = match &spec {
        Some(text) => quote!(::core::option::Option::Some(#text)),
        None => quote!(::core::option::Option::None),
    };
    let section = spec.as_ref().map(|text| {
        let bytes = syn::LitByteStr::new(text.as_bytes(), Span::call_site());
        let len = text.len();
        quote! {
            #[used]
            #[unsafe(link_section = "weir.fields")]
            static __WEIR_FIELDS: [u8; #len] = *#bytes;
        }
    });

    Ok(quote! {
        #func

        /// The rule's definition: what the wasm exports run, and what
        /// `weir_guest_sdk::testing::Harness` runs natively.
        pub const RULE: ::weir_guest_sdk::RuleDef<#state> = ::weir_guest_sdk::RuleDef {
            init: {
                fn __weir_init(
                    ctx: &::weir_guest_sdk::InitContext,
                ) -> ::core::result::Result<#state, ::weir_guest_sdk::Error> {
                    #init_body
                }
                __weir_init
            },
            process: {
                fn __weir_process(
                    event: &::weir_guest_sdk::Event<'_>,
                    state: &#state,
                    out: &mut ::weir_guest_sdk::Outputs<'_>,
                ) -> ::core::result::Result<(), ::weir_guest_sdk::Error> {
                    let _ = state;
                    #call.map_err(::core::convert::Into::into)
                }
                __weir_process
            },
            fields: #fields_const,
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[link(wasm_import_module = "weir")]
            unsafe extern "C" {
                #[link_name = "log"]
                safe fn __weir_log(level: u32, ptr: *const u8, len: u32);
                #[link_name = "now_ms"]
                safe fn __weir_now_ms() -> i64;
                #[link_name = "monotonic_ns"]
                safe fn __weir_monotonic_ns() -> i64;
                #[link_name = "counter_add"]
                safe fn __weir_counter_add(ptr: *const u8, len: u32, delta: i64);
            }

            static HOST: ::weir_guest_sdk::__private::Host = ::weir_guest_sdk::__private::Host {
                log: |level, message| __weir_log(level, message.as_ptr(), message.len() as u32),
                now_ms: || __weir_now_ms(),
                monotonic_ns: || __weir_monotonic_ns(),
                counter_add: |name, delta| __weir_counter_add(name.as_ptr(), name.len() as u32, delta),
            };

            #[unsafe(no_mangle)]
            pub extern "C" fn weir_abi_version_1() {}

            #[unsafe(no_mangle)]
            pub extern "C" fn weir_buffer(len: u32) -> u32 {
                ::weir_guest_sdk::__private::buffer(&HOST, len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn weir_init(len: u32) -> u64 {
                ::weir_guest_sdk::__private::init(&RULE, &HOST, len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn weir_process(len: u32) -> u64 {
                ::weir_guest_sdk::__private::process(&RULE, &HOST, len)
            }

            #section
        };
    })
}
