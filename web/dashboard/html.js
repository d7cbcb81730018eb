// htm gives Preact templates in plain JavaScript: no build step, and text is always set as text.
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);
