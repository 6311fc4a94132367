// New-conversation alerts: a desktop notification (the Notification API; permission is asked
// only after a click on the "Desktop notifications" control) and a short sound made with Web
// Audio (no file). Both choices are kept in localStorage.

const KEY_NOTIFY = 'confidant.console.desktopNotifications';
const KEY_SOUND = 'confidant.console.sound';

function stored(key) {
  try {
    return localStorage.getItem(key) === 'on';
  } catch {
    return false;
  }
}

function store(key, on) {
  try {
    localStorage.setItem(key, on ? 'on' : 'off');
  } catch {
    /* private mode: the choice lasts this page only */
  }
}

export class Alerts {
  /**
   * @param {HTMLButtonElement} notifyButton  toggles desktop notifications (aria-pressed)
   * @param {HTMLInputElement} soundToggle    a checkbox
   */
  constructor(notifyButton, soundToggle) {
    this.notifyButton = notifyButton;
    this.soundToggle = soundToggle;
    this.audio = null;
    this.notify = stored(KEY_NOTIFY) && typeof Notification !== 'undefined' && Notification.permission === 'granted';
    this.sound = stored(KEY_SOUND);
    this.soundToggle.checked = this.sound;
    this.render();
    notifyButton.addEventListener('click', () => this.toggleNotify());
    soundToggle.addEventListener('change', () => {
      this.sound = soundToggle.checked;
      store(KEY_SOUND, this.sound);
      if (this.sound) this.beep(); // a click is a user gesture: the audio context may start now
    });
  }

  render() {
    const supported = typeof Notification !== 'undefined';
    this.notifyButton.hidden = !supported;
    this.notifyButton.setAttribute('aria-pressed', String(this.notify));
    const denied = supported && Notification.permission === 'denied';
    this.notifyButton.title = denied
      ? 'The browser blocks notifications for this page; allow them in its site settings.'
      : 'Show a desktop notification when a new conversation arrives';
  }

  async toggleNotify() {
    if (typeof Notification === 'undefined') return;
    if (this.notify) {
      this.notify = false;
    } else {
      let permission = Notification.permission;
      if (permission === 'default') permission = await Notification.requestPermission();
      this.notify = permission === 'granted';
    }
    store(KEY_NOTIFY, this.notify);
    this.render();
  }

  /** A new conversation arrived: notify and/or sound, as chosen. */
  newConversation(title, body, onClick) {
    if (this.sound) this.beep();
    if (!this.notify || typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    try {
      const n = new Notification(title, { body, tag: 'confidant-new-conversation' });
      n.onclick = () => {
        window.focus();
        n.close();
        if (onClick) onClick();
      };
    } catch {
      /* some browsers allow notifications only from a service worker */
    }
  }

  /** Two short tones, generated. */
  beep() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      this.audio = this.audio || new Ctx();
      const ctx = this.audio;
      if (ctx.state === 'suspended') ctx.resume();
      const t = ctx.currentTime;
      [660, 880].forEach((freq, i) => {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.type = 'sine';
        osc.frequency.value = freq;
        const start = t + i * 0.16;
        gain.gain.setValueAtTime(0.0001, start);
        gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.14);
        osc.connect(gain).connect(ctx.destination);
        osc.start(start);
        osc.stop(start + 0.15);
      });
    } catch {
      /* no audio: nothing to do */
    }
  }
}
