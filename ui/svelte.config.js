// Svelte 5 strips TypeScript types itself; no preprocessor is needed.
export default {};
