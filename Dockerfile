FROM node:22-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
# `prepare` skipped the CLI build above (the sources were not copied yet); build it now.
RUN npm run build:cli
USER node
