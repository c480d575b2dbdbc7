# Builds the tollgate, tollctl and mock-provider binaries into a small Debian image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tollgate -p tollctl -p mock-provider

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/target/release/tollgate /src/target/release/tollctl /src/target/release/mock-provider /usr/local/bin/
COPY pricing ./pricing
COPY docker/tollgate.toml ./tollgate.toml
EXPOSE 8080 8081
CMD ["tollgate", "serve", "--config", "/app/tollgate.toml"]
