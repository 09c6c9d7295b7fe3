FROM node:22-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
# `prepare` skipped the builds above (the sources were not copied yet): the CLI (dist/gatehouse.mjs) and the
# node (dist/gatehouse-node.mjs, which compose runs with node itself: nothing is compiled at start).
RUN npm run build
USER node
