# maskflow in a container (not exercised by CI here: no Docker engine on these machines).
FROM rust:1-bookworm AS build
RUN rustup target add wasm32-unknown-unknown
WORKDIR /src
COPY . .
RUN cargo build --release -p maskflow-host

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/maskflow /usr/local/bin/maskflow
ENTRYPOINT ["maskflow"]
CMD ["run"]
