use clap::Parser;

fn main() {
    let cli = vpcemu::cli::Cli::parse();
    if let Err(e) = vpcemu::cli::main_with(cli) {
        eprintln!("vpcemu: error: {e}");
        std::process::exit(1);
    }
}
