//! Compiles the `.proto` files with `protox`, a protobuf compiler written in Rust, so building
//! peerfind needs no `protoc` on the machine.

/// The wire protocols' `.proto` files: plain messages.
const WIRE_FILES: [&str; 3] = [
    "peerfind/v1/enr.proto",
    "peerfind/v1/intro.proto",
    "peerfind/v1/mesh.proto",
];

/// The status API's `.proto` files (feature `api`): its state and events, and its
/// diagnostics.
const API_FILES: [&str; 3] = [
    "peerfind/v1/node.proto",
    "peerfind/v1/diag.proto",
    "peerfind/v1/port_mapping.proto",
];

/// Where the encoded `FileDescriptorSet` of [`API_FILES`] goes in `OUT_DIR`.
#[cfg(feature = "api")]
const API_DESCRIPTORS: &str = "peerfind_api_descriptors.bin";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in WIRE_FILES.iter().chain(&API_FILES) {
        println!("cargo:rerun-if-changed={file}");
    }
    #[cfg(feature = "api")]
    {
        let files = [
            WIRE_FILES[0],
            WIRE_FILES[1],
            WIRE_FILES[2],
            API_FILES[0],
            API_FILES[1],
            API_FILES[2],
        ];
        let descriptors = protox::compile(files, ["."])?;
        // Only the API's files declare services, so only they get servers and clients; the
        // wire protocols stay plain messages.
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .compile_fds(descriptors)?;
        // The status API's descriptors (its files and what they import, with their comments),
        // for gRPC server reflection.
        let api = protox::compile(API_FILES, ["."])?;
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
        std::fs::write(
            out.join(API_DESCRIPTORS),
            prost::Message::encode_to_vec(&api),
        )?;
    }
    #[cfg(not(feature = "api"))]
    prost_build::Config::new().compile_fds(protox::compile(WIRE_FILES, ["."])?)?;
    Ok(())
}
